// Package soak is `make soak`: the whole platform (devstack with two api processes, two
// Temporal workers and two replicas per runtime, on a PostgreSQL and a Redis of its own)
// under an open-loop mixed load, while a nemesis injects one fault at a time; every
// request is recorded in a history, and a checker holds the history against the database
// afterwards (Jepsen's approach): nothing acknowledged lost, nothing done twice, every
// accepted execution and run final, nothing final rewritten, availability and recovery
// time per fault kind. The report goes to RELIABILITY.md with a timeline plot.
package soak

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Kind is a kind of request of the mixed load.
type Kind string

// The load's kinds.
const (
	SyncPython Kind = "sync-python" // sync invoke of a Python function
	SyncNode   Kind = "sync-node"
	SyncRust   Kind = "sync-rust"
	CacheHit   Kind = "cache"     // sync invoke of a cached function with a constant event
	Async      Kind = "async"     // Prefer: respond-async → 202, final later
	RunSync    Kind = "run-sync"  // sync pipeline run with a map step (fast path)
	RunAsync   Kind = "run-async" // durable pipeline run with a map and a sleep (Temporal)
	Cell       Kind = "cell"      // a notebook session cell
)

// Kinds are every kind, in report order.
var Kinds = []Kind{SyncPython, SyncNode, SyncRust, CacheHit, Async, RunSync, RunAsync, Cell}

// Sync reports whether the kind's answer is the outcome itself (availability counts
// these); async kinds are answered by an acceptance (202 and an id).
func (k Kind) Sync() bool { return k != Async && k != RunAsync }

// Execution reports whether the kind's id is an execution's (a request_logs row) rather
// than a run's.
func (k Kind) Execution() bool { return k != RunSync && k != RunAsync }

// Record is one offered request and what the client saw.
type Record struct {
	Seq  int64     `json:"seq"`
	Sent time.Time `json:"sent"`
	API  int       `json:"api"` // index of the api process it went to (first attempt)
	Kind Kind      `json:"kind"`
	// Key is the request's Idempotency-Key and the "k" of its event or run input (cells:
	// empty).
	Key string `json:"key,omitempty"`
	// HTTP is the final attempt's answer status, 0 when none came (connection refused,
	// reset, timeout).
	HTTP     int `json:"http"`
	Attempts int `json:"attempts"`
	// FirstOK says the first attempt was answered as expected (no client retry needed).
	FirstOK bool `json:"first_ok"`
	// ID is the execution's or run's id from the answer; Session and Cell name a cell.
	ID      string `json:"id,omitempty"`
	Session string `json:"session,omitempty"`
	Cell    int    `json:"cell,omitempty"`
	// Status and Result are the envelope's status and result (a run's output).
	Status    string          `json:"status,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	LatencyMS float64         `json:"latency_ms"`
	Err       string          `json:"err,omitempty"`
	// FirstErr is what the first attempt saw when it failed and was retried.
	FirstErr string `json:"first_err,omitempty"`
}

// Acknowledged says the platform answered with an id: it promised the execution, run or
// cell exists.
func (r *Record) Acknowledged() bool {
	if r.HTTP < 200 || r.HTTP > 599 {
		return false
	}
	if r.Kind == Cell {
		return r.Session != "" && r.Cell > 0 && r.Status != ""
	}
	return r.ID != ""
}

// OK says the request was answered as expected: a succeeded envelope for the sync kinds,
// an acceptance for the async ones.
func (r *Record) OK() bool {
	if r.Kind.Sync() {
		return r.HTTP == 200 && r.Status == "succeeded"
	}
	return r.HTTP == 202 && r.ID != ""
}

// Fault is one injected fault.
type Fault struct {
	Kind   string    `json:"kind"`
	Target string    `json:"target,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"` // the fault is over: the process is back, the signal lifted
	Note   string    `json:"note,omitempty"`
	Err    string    `json:"err,omitempty"` // the injection itself failed
}

// History collects records and faults and appends each, as one JSON line, to a file.
type History struct {
	mu      sync.Mutex
	records []Record
	faults  []Fault
	f       *os.File
	w       *bufio.Writer
}

// NewHistory writes the history to path ("" keeps it in memory only).
func NewHistory(path string) (*History, error) {
	h := &History{}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		h.f, h.w = f, bufio.NewWriterSize(f, 64<<10)
	}
	return h, nil
}

type line struct {
	Request *Record `json:"request,omitempty"`
	Fault   *Fault  `json:"fault,omitempty"`
}

func (h *History) write(l line) {
	if h.w == nil {
		return
	}
	b, _ := json.Marshal(l)
	_, _ = h.w.Write(append(b, '\n'))
}

// Add records a finished request.
func (h *History) Add(r Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	h.write(line{Request: &r})
}

// AddFault records a fault once it is over.
func (h *History) AddFault(f Fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, f)
	h.write(line{Fault: &f})
}

// Records and Faults are copies of what was recorded so far.
func (h *History) Records() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Record(nil), h.records...)
}

func (h *History) Faults() []Fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Fault(nil), h.faults...)
}

// Close flushes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		return nil
	}
	err := h.w.Flush()
	if cerr := h.f.Close(); err == nil {
		err = cerr
	}
	h.w = nil
	return err
}
