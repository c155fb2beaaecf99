package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The nemesis' fault kinds.
const (
	KillLanguageWorker = "kill-language-worker" // kill -9 of a Python/Node.js worker under a runtime host
	KillReplica        = "kill-replica"         // kill -9 of a runtime host replica (the provider restarts it)
	KillTemporalWorker = "kill-temporal-worker" // kill -9 of a `lambda worker`, restarted after
	KillAPI            = "kill-api"             // kill -9 of an api process, restarted after
	RestartRedis       = "restart-redis"
	RestartPostgres    = "restart-postgres" // fast shutdown (SIGINT), started again
	StopTemporal       = "stop-temporal"    // SIGSTOP of the Temporal server, SIGCONT after Pause
	StopProvider       = "stop-provider"    // SIGSTOP of the provider, SIGCONT after Pause
	FullTmp            = "full-tmp"         // a language worker's /tmp filled, emptied after Pause
)

// AllFaults are every fault kind, in report order.
var AllFaults = []string{KillLanguageWorker, KillReplica, KillTemporalWorker, KillAPI, RestartRedis,
	RestartPostgres, StopTemporal, StopProvider, FullTmp}

// Stack is what the nemesis needs of the running platform (devstack.Stack).
type Stack interface {
	PID(name string) int
	Signal(name string, sig syscall.Signal) error
	Restart(ctx context.Context, name string, sig syscall.Signal) (time.Duration, error)
}

// Nemesis injects one fault at a time, at seeded random intervals.
type Nemesis struct {
	Stack  Stack
	Faults []string
	Seed   uint64
	// Gap bounds the quiet time between one fault's end and the next one's start.
	MinGap, MaxGap time.Duration
	// Pause is how long a SIGSTOP or a full /tmp lasts.
	Pause time.Duration
	// APIs and Workers name the processes of each (api, api-2; worker, worker-2).
	APIs, Workers []string
	// ReplicasReady counts the ready replicas of every runtime function; a killed
	// replica's fault ends when it is back to Want.
	ReplicasReady func(ctx context.Context) (int, error)
	WantReplicas  int
	H             *History
	Log           func(format string, args ...any)
}

// Run injects faults until ctx ends: the kinds in a seeded shuffled order, each kind once
// per round.
func (n *Nemesis) Run(ctx context.Context) {
	if len(n.Faults) == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(n.Seed, n.Seed^0x5eed))
	var order []string
	for {
		if len(order) == 0 {
			order = append([]string(nil), n.Faults...)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		gap := n.MinGap + time.Duration(rng.Int64N(int64(n.MaxGap-n.MinGap)+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		kind := order[0]
		order = order[1:]
		// A fault once started runs to its end (the process back, the signal lifted) even
		// when the soak's time is up meanwhile.
		f := n.inject(context.WithoutCancel(ctx), kind, rng)
		n.H.AddFault(f)
		if n.Log != nil {
			msg := fmt.Sprintf("fault %s %s: %s", f.Kind, f.Target, f.End.Sub(f.Start).Round(10*time.Millisecond))
			if f.Err != "" {
				msg += " (failed: " + f.Err + ")"
			}
			n.Log("%s", msg)
		}
	}
}

func (n *Nemesis) inject(ctx context.Context, kind string, rng *rand.Rand) Fault {
	f := Fault{Kind: kind, Start: time.Now()}
	if n.Log != nil {
		n.Log("fault %s: start", kind)
	}
	var err error
	pick := func(names []string) string { return names[rng.IntN(len(names))] }
	// Faults on processes the provider runs use the process table: kill -9 of one pid.
	provider := n.Stack.PID("provider")
	switch kind {
	case KillAPI:
		f.Target = pick(n.APIs)
		_, err = n.Stack.Restart(ctx, f.Target, syscall.SIGKILL)
	case KillTemporalWorker:
		f.Target = pick(n.Workers)
		_, err = n.Stack.Restart(ctx, f.Target, syscall.SIGKILL)
	case RestartRedis:
		f.Target = "redis"
		_, err = n.Stack.Restart(ctx, "redis", syscall.SIGTERM)
	case RestartPostgres:
		f.Target = "postgres"
		_, err = n.Stack.Restart(ctx, "postgres", syscall.SIGINT)
	case StopTemporal, StopProvider:
		f.Target = map[string]string{StopTemporal: "temporal", StopProvider: "provider"}[kind]
		if err = n.Stack.Signal(f.Target, syscall.SIGSTOP); err == nil {
			sleep(ctx, n.Pause)
			err = n.Stack.Signal(f.Target, syscall.SIGCONT)
		}
	case KillReplica:
		rs := replicas(procs(), provider)
		if len(rs) == 0 {
			err = errors.New("no runtime host replica found")
			break
		}
		p := rs[rng.IntN(len(rs))]
		f.Target = fmt.Sprintf("%s pid %d", envOf(p.PID, "LAMBDA_RUNTIME"), p.PID)
		if err = syscall.Kill(p.PID, syscall.SIGKILL); err == nil && n.ReplicasReady != nil {
			err = n.waitReplicas(ctx)
		}
	case KillLanguageWorker:
		ws := languageWorkers(procs(), provider)
		if len(ws) == 0 {
			err = errors.New("no language worker found")
			break
		}
		p := ws[rng.IntN(len(ws))]
		f.Target = fmt.Sprintf("%s pid %d", p.Comm, p.PID)
		err = syscall.Kill(p.PID, syscall.SIGKILL)
	case FullTmp:
		ws := languageWorkers(procs(), provider)
		if len(ws) == 0 {
			err = errors.New("no language worker found")
			break
		}
		p := ws[rng.IntN(len(ws))]
		f.Target = fmt.Sprintf("%s pid %d", p.Comm, p.PID)
		f.Note, err = fillTmp(ctx, p.PID, n.Pause)
	default:
		err = fmt.Errorf("unknown fault %q", kind)
	}
	if err != nil {
		f.Err = err.Error()
	}
	f.End = time.Now()
	return f
}

// waitReplicas waits up to two minutes for every replica to be ready again.
func (n *Nemesis) waitReplicas(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	// The provider notices the exit and restarts the replica: give it a moment to notice.
	sleep(ctx, 100*time.Millisecond)
	for {
		got, err := n.ReplicasReady(ctx)
		if err == nil && got >= n.WantReplicas {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("replicas ready: %d of %d (%v)", got, n.WantReplicas, err)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// fillTmp fills the /tmp of process pid (its TMPDIR, seen through /proc/<pid>/root: a
// sandboxed worker's own tmpfs) until the write fails or 256 MiB, keeps it full for hold,
// then removes the file.
func fillTmp(ctx context.Context, pid int, hold time.Duration) (string, error) {
	dir := envOf(pid, "TMPDIR")
	if dir == "" {
		dir = "/tmp"
	}
	root := filepath.Join("/proc", strconv.Itoa(pid), "root")
	path := filepath.Join(root, dir, "soak-fill")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("fill %s: %w", dir, err)
	}
	defer os.Remove(path)
	chunk := make([]byte, 1<<20)
	written := 0
	var werr error
	for written < 256<<20 {
		var k int
		k, werr = fh.Write(chunk)
		written += k
		if werr != nil {
			break
		}
	}
	fh.Close()
	note := fmt.Sprintf("%s filled with %d MiB", dir, written>>20)
	if werr != nil {
		note += " (" + werr.Error() + ")"
	}
	sleep(ctx, hold)
	return note, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
