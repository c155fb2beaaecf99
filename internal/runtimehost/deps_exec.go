package runtimehost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
)

// depsExecutor runs the dependency engine's commands (every resolve and install command of
// a registry entry's `dependencies:` block) the way script builds run: through the host's
// spawner as builds. In the sandbox that is a uid of their own holding only the step's
// folder, the download cache and a private HOME for the command's time, no core dumps,
// RLIMIT_CPU of the step's time limit, the build memory cgroup, and with bubblewrap only
// the system, the toolchain (build_readonly) and the entry's source folders (a wheelhouse,
// a crate registry) visible; a command marked `network: none` gets no network there, a
// download step (`network: registry`) keeps the host's. LAMBDA_SANDBOX=off runs them as
// plain processes.
type depsExecutor struct{ b *builds }

// depsLimits are the rlimits of an installer command (those of a build).
var depsLimits = sandbox.Limits{FileSize: 1 << 30, OpenFiles: 4096}

func (x depsExecutor) Exec(ctx context.Context, c deps.Cmd) ([]byte, []byte, error) {
	bin, err := c.Program()
	if err != nil {
		return nil, nil, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	// The download cache changes owner for each command's time: one command at a time
	// writes it (in this host or another sharing the folder).
	unlock, err := lockDirs(ctx, c.Shared)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	stdout, stderr := deps.NewOutput(0), deps.NewOutput(0)
	spec := sandbox.Spec{
		Role: sandbox.RoleBuild, Argv: append([]string{bin}, c.Args[1:]...), Dir: c.Dir, Env: c.Env,
		Stdout: stdout, Stderr: stderr, Limits: depsLimits, CPU: c.Timeout,
		Writable: c.Writable, ReadOnly: append(slices.Clone(x.b.readOnly), c.ReadOnly...),
		Network: c.Network == deps.NetworkRegistry,
	}
	if spec.CPU <= 0 {
		spec.CPU = x.b.timeout
	}
	if x.b.slots != nil {
		select {
		case x.b.slots <- struct{}{}:
			defer func() { <-x.b.slots }()
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	proc, err := x.b.spawner.Spawn(spec)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, proc.Kill)
	_, err = proc.Wait()
	stop()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// lockDirs takes an exclusive flock on each directory (sorted, so two callers never wait
// on each other crosswise) and returns their release.
func lockDirs(ctx context.Context, dirs []string) (func(), error) {
	dirs = slices.Sorted(slices.Values(dirs))
	dirs = slices.Compact(dirs)
	var held []int
	unlock := func() {
		for _, fd := range held {
			_ = unix.Close(fd) // drops the flock
		}
	}
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("lock %s: %w", d, &os.PathError{Op: "open", Path: d, Err: err})
		}
		held = append(held, fd)
		for wait := time.Millisecond; ; wait = min(wait*2, 50*time.Millisecond) {
			err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
				unlock()
				return nil, fmt.Errorf("lock %s: %w", d, err)
			}
			select {
			case <-ctx.Done():
				unlock()
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	return unlock, nil
}
