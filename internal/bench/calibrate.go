package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
)

// PipeEcho starts `cat` and returns an Op that sends it one byte through a pipe and reads
// it back: one round trip through another process, two wake-ups. Back to back it shows a
// hop between busy processes; paced, a hop between processes parked in between — the
// machine's floor for every hop of the platform (client → api → runtime host → language
// worker, api → PostgreSQL). stop ends the child.
func PipeEcho() (op Op, stop func(), err error) {
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start cat: %w", err)
	}
	stop = func() {
		in.Close()
		_ = cmd.Wait()
	}
	b := []byte{'x'}
	var mu sync.Mutex // one round trip at a time, also under an open-loop load
	op = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := in.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(out, b); err != nil {
			return err
		}
		if b[0] != 'x' {
			return errors.New("pipe echo: wrong byte back")
		}
		return nil
	}
	return op, stop, nil
}

// flushFileSize is the disk-flush calibration's file: a PostgreSQL WAL segment's size,
// written over in a ring of flushBlock pages.
const (
	flushFileSize = 16 << 20
	flushBlock    = 8 << 10
)

// DiskFlush returns an Op that overwrites the next 8 KiB page of a preallocated 16 MiB
// file in dir and waits for fdatasync — what every PostgreSQL commit waits for (a WAL page
// flush), and so what every sync invocation waits for through its durable request log.
// dir should be on the disk that holds PostgreSQL's data. stop removes the file.
func DiskFlush(dir string) (op Op, stop func(), err error) {
	f, err := os.CreateTemp(dir, "lambda-bench-flush-*")
	if err != nil {
		return nil, nil, fmt.Errorf("disk flush: %w", err)
	}
	stop = func() {
		f.Close()
		os.Remove(f.Name())
	}
	// Preallocated with real zeros, as PostgreSQL zero-fills a new WAL segment, so a
	// flush writes data, not block allocations.
	zeros := make([]byte, 1<<20)
	for off := 0; off < flushFileSize && err == nil; off += len(zeros) {
		_, err = f.Write(zeros)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("disk flush: preallocate: %w", err)
	}
	page := bytes.Repeat([]byte{'w'}, flushBlock)
	var mu sync.Mutex // one flush at a time, as one WAL writer
	var off int64
	op = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.WriteAt(page, off); err != nil {
			return err
		}
		off = (off + flushBlock) % flushFileSize
		return datasync(f)
	}
	return op, stop, nil
}
