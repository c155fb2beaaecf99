package soak

import (
	"io"
	"os"
	"sync"
)

func appendText(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}

func readText(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// lockedWriter serialises the soak's log lines into a builder.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
