package devstack

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// The stack's children can be stopped and started again while it runs (a fault injector,
// a test of a restart): Restart replaces a child without failing the stack, Signal sends
// a signal to one (SIGSTOP/SIGCONT), PID finds one.

// Processes are the names of the stack's long-lived children in start order (postgres
// and redis when private, temporal, provider, gateway, api, api-2, worker, ...).
func (s *Stack) Processes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.procs {
		if !p.command.oneshot {
			out = append(out, p.name)
		}
	}
	return out
}

// PID is the process id of the named child, 0 when there is none.
func (s *Stack) PID(name string) int {
	if p := s.procByName(name); p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

// Signal sends sig to the named child's process only (not its group).
func (s *Stack) Signal(name string, sig syscall.Signal) error {
	p := s.procByName(name)
	if p == nil {
		return fmt.Errorf("devstack: no child %q", name)
	}
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

// Restart stops the named child by sending sig to its process group (SIGKILL: a crash;
// SIGINT to a private PostgreSQL: a fast shutdown), SIGKILL after StopGrace, then starts
// it again with the same command and waits until it is ready. The stack does not fail
// meanwhile. It returns the time the child was down.
func (s *Stack) Restart(ctx context.Context, name string, sig syscall.Signal) (time.Duration, error) {
	old := s.procByName(name)
	if old == nil {
		return 0, fmt.Errorf("devstack: no child %q", name)
	}
	if old.command.oneshot {
		return 0, fmt.Errorf("devstack: %s is not a long-lived child", name)
	}
	old.stopping.Store(true)
	t0 := time.Now()
	pid := old.cmd.Process.Pid
	_ = syscall.Kill(-pid, sig)
	select {
	case <-old.done:
	case <-time.After(s.opts.StopGrace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-old.done
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // leftovers of the group
	select {
	case <-s.failed:
		return 0, s.failErr
	default:
	}
	p, err := s.spawn(name, old.command)
	if err != nil {
		return 0, fmt.Errorf("devstack: restart %s: %w", name, err)
	}
	p.ready = old.ready
	// The new child takes the old one's place in the start order (Stop goes in reverse).
	s.mu.Lock()
	s.procs = slices.DeleteFunc(s.procs, func(q *proc) bool { return q == p })
	if i := slices.Index(s.procs, old); i >= 0 {
		s.procs[i] = p
	} else {
		s.procs = append(s.procs, p)
	}
	s.mu.Unlock()
	if p.ready != nil {
		if err := s.waitUntil(ctx, p, s.opts.StartTimeout, "ready after a restart", p.ready); err != nil {
			return time.Since(t0), fmt.Errorf("devstack: restart %s: %w", name, err)
		}
	}
	return time.Since(t0), nil
}
