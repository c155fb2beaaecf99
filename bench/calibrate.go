package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
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
