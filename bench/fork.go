package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
)

// ForkOp runs a Python handler the classic watchdog way: one fresh interpreter per
// request (`python -c <program>`), the event on stdin, the handler's JSON result on
// stdout. It is the baseline the warm worker pool is compared with.
func ForkOp(python, handlerSource string, event []byte) Op {
	program := "import sys, json\n" + handlerSource + "\n" +
		"print(json.dumps(handler(json.loads(sys.stdin.read()), None)))\n"
	return func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, python, "-c", program)
		cmd.Stdin = bytes.NewReader(event)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("fork: %v: %s", err, bytes.TrimSpace(errOut.Bytes()))
		}
		if !json.Valid(bytes.TrimSpace(out.Bytes())) {
			return fmt.Errorf("fork: not JSON: %q", out.String())
		}
		return nil
	}
}
