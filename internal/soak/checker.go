package soak

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"time"
)

// ExecRow is a request_logs row as the checker reads it.
type ExecRow struct {
	ID      string
	Status  string
	Result  json.RawMessage
	Key     string // the event's "k"
	Mode    string // sync, async, session, ...
	RunID   string
	StepID  string
	Session string
	Index   int // a cell's number in its session (the row's version)
	Hash    string
}

// RunRow is a runs row and its run_steps.
type RunRow struct {
	ID     string
	Status string
	Key    string // idempotency_key
	Output json.RawMessage
	Steps  []StepRow
	Hash   string
}

// StepRow is a run_steps row.
type StepRow struct {
	ID     string
	Status string
}

// DB is what the checker reads from the database at the end.
type DB struct {
	Execs []ExecRow
	Runs  []RunRow
}

// Snapshot is the hash of every final row at one moment (mid-soak): rows final then
// must be the same at the end.
type Snapshot struct {
	At    time.Time
	Execs map[string]string // id → hash
	Runs  map[string]string
}

// PipelineShape is what a run of the soak's pipelines records: its steps, and how many
// succeeded executions each step makes in a succeeded run (a map step: one per item).
type PipelineShape struct {
	Steps []string
	Calls map[string]int
}

// Violation is a broken promise, with the ids to look at.
type Violation struct {
	Rule string `json:"rule"` // lost, mismatch, duplicate, not-final, steps, rewritten
	Kind Kind   `json:"kind,omitempty"`
	IDs  []string
	Note string `json:"note"`
}

func (v Violation) String() string {
	return fmt.Sprintf("%s (%s): %s %v", v.Rule, v.Kind, v.Note, v.IDs)
}

// Checked is the checker's verdict on a history.
type Checked struct {
	Violations []Violation
	// AsyncAccepted/AsyncFinal count accepted async executions and runs, and those final
	// at the end; AsyncFailed those final but not succeeded.
	AsyncAccepted, AsyncFinal, AsyncFailed int
	RowsCompared                           int // final rows of the snapshot compared at the end
}

// Count returns how many violations follow rule.
func (c *Checked) Count(rule string) int {
	n := 0
	for _, v := range c.Violations {
		if v.Rule == rule {
			n++
		}
	}
	return n
}

var finalExec = map[string]bool{"succeeded": true, "failed": true, "timeout": true, "canceled": true}
var finalRun = map[string]bool{"succeeded": true, "failed": true, "canceled": true}
var finalStep = map[string]bool{"succeeded": true, "failed": true, "skipped": true, "canceled": true}

// Check holds the history against the database: every acknowledged sync execution and
// cell is recorded exactly once with the status and result the client saw; every
// accepted async execution and run is final, once, with each step recorded once; no row
// final at the snapshot changed since; no request ran twice (two rows for one key).
func Check(records []Record, db DB, snap *Snapshot, shapes map[Kind]PipelineShape) Checked {
	var c Checked
	add := func(rule string, k Kind, note string, ids ...string) {
		c.Violations = append(c.Violations, Violation{Rule: rule, Kind: k, IDs: ids, Note: note})
	}
	execByID := map[string][]ExecRow{}
	execByKey := map[string][]ExecRow{}
	cells := map[string][]ExecRow{} // session/index
	stepCalls := map[string]int{}   // run/step → succeeded executions
	for _, e := range db.Execs {
		execByID[e.ID] = append(execByID[e.ID], e)
		if e.Key != "" && e.RunID == "" {
			execByKey[e.Key] = append(execByKey[e.Key], e)
		}
		if e.Session != "" {
			k := fmt.Sprintf("%s/%d", e.Session, e.Index)
			cells[k] = append(cells[k], e)
		}
		if e.RunID != "" && e.Status == "succeeded" {
			stepCalls[e.RunID+"/"+e.StepID]++
		}
	}
	runByID := map[string]RunRow{}
	runsByKey := map[string][]RunRow{}
	for _, r := range db.Runs {
		runByID[r.ID] = r
		if r.Key != "" {
			runsByKey[r.Key] = append(runsByKey[r.Key], r)
		}
	}
	ids := func(rows []ExecRow) []string {
		out := make([]string, len(rows))
		for i, r := range rows {
			out[i] = r.ID
		}
		return out
	}
	for i := range records {
		r := &records[i]
		switch {
		case r.Kind == Cell:
			if !r.Acknowledged() {
				continue
			}
			k := fmt.Sprintf("%s/%d", r.Session, r.Cell)
			rows := cells[k]
			switch {
			case len(rows) == 0:
				add("lost", r.Kind, fmt.Sprintf("cell %d of session %s answered %s, not in request_logs", r.Cell, r.Session, r.Status), k)
			case len(rows) > 1:
				add("duplicate", r.Kind, fmt.Sprintf("cell %d of session %s recorded %d times", r.Cell, r.Session, len(rows)), ids(rows)...)
			case r.Status == "succeeded" && !sameJSON(r.Result, fmt.Appendf(nil, "%d", 2*r.Seq)):
				add("wrong-answer", r.Kind, fmt.Sprintf("cell %d answered %s, want %d", r.Cell, r.Result, 2*r.Seq), rows[0].ID)
			case rows[0].Status != r.Status || !sameJSON(rows[0].Result, r.Result):
				add("mismatch", r.Kind, fmt.Sprintf("cell %d: client saw %s %s, recorded %s %s", r.Cell, r.Status, r.Result, rows[0].Status, rows[0].Result), rows[0].ID)
			}
		case r.Kind.Execution():
			// No request may have run twice, acknowledged or not (a retry with its key).
			if r.Kind != CacheHit && r.Key != "" && len(execByKey[r.Key]) > 1 {
				add("duplicate", r.Kind, fmt.Sprintf("key %s has %d executions", r.Key, len(execByKey[r.Key])), ids(execByKey[r.Key])...)
			}
			if !r.Acknowledged() {
				continue
			}
			rows := execByID[r.ID]
			if len(rows) == 0 {
				add("lost", r.Kind, fmt.Sprintf("answered %d %s, not in request_logs", r.HTTP, r.Status), r.ID)
				continue
			}
			row := rows[0]
			if r.Kind.Sync() && r.Kind != CacheHit && r.Status == "succeeded" && !answers(r.Result, r.Key) {
				add("wrong-answer", r.Kind, fmt.Sprintf("answered %s for key %s", r.Result, r.Key), r.ID)
			}
			if r.Kind.Sync() {
				if row.Status != r.Status || !sameJSON(row.Result, r.Result) {
					add("mismatch", r.Kind, fmt.Sprintf("client saw %s %s, recorded %s %s", r.Status, r.Result, row.Status, row.Result), r.ID)
				}
				continue
			}
			c.AsyncAccepted++
			if !finalExec[row.Status] {
				add("not-final", r.Kind, "accepted execution still "+row.Status, r.ID)
				continue
			}
			c.AsyncFinal++
			if row.Status != "succeeded" {
				c.AsyncFailed++
			}
		default: // runs
			if r.Key != "" && len(runsByKey[r.Key]) > 1 {
				var rids []string
				for _, x := range runsByKey[r.Key] {
					rids = append(rids, x.ID)
				}
				add("duplicate", r.Kind, fmt.Sprintf("key %s has %d runs", r.Key, len(rids)), rids...)
			}
			if !r.Acknowledged() {
				continue
			}
			run, ok := runByID[r.ID]
			if !ok {
				add("lost", r.Kind, fmt.Sprintf("answered %d %s, not in runs", r.HTTP, r.Status), r.ID)
				continue
			}
			if r.Kind.Sync() && r.Status != "" && finalRun[r.Status] &&
				(run.Status != r.Status || (r.Status == "succeeded" && !sameJSON(run.Output, r.Result))) {
				add("mismatch", r.Kind, fmt.Sprintf("client saw %s %s, recorded %s %s", r.Status, r.Result, run.Status, run.Output), r.ID)
			}
			if !r.Kind.Sync() {
				c.AsyncAccepted++
			}
			if !finalRun[run.Status] {
				add("not-final", r.Kind, "accepted run still "+run.Status, r.ID)
				continue
			}
			if !r.Kind.Sync() {
				c.AsyncFinal++
				if run.Status != "succeeded" {
					c.AsyncFailed++
				}
			}
			if shape, ok := shapes[r.Kind]; ok {
				checkSteps(&c, r, run, shape, stepCalls)
			}
		}
	}
	if snap != nil {
		for id, h := range snap.Execs {
			c.RowsCompared++
			rows := execByID[id]
			if len(rows) == 0 {
				add("rewritten", "", "final execution row gone since "+snap.At.Format(time.TimeOnly), id)
			} else if rows[0].Hash != h {
				add("rewritten", "", fmt.Sprintf("final execution row changed since %s (now %s)", snap.At.Format(time.TimeOnly), rows[0].Status), id)
			}
		}
		for id, h := range snap.Runs {
			c.RowsCompared++
			run, ok := runByID[id]
			if !ok {
				add("rewritten", "", "final run gone since "+snap.At.Format(time.TimeOnly), id)
			} else if run.Hash != h {
				add("rewritten", "", fmt.Sprintf("final run changed since %s (now %s)", snap.At.Format(time.TimeOnly), run.Status), id)
			}
		}
	}
	sort.SliceStable(c.Violations, func(i, j int) bool { return c.Violations[i].Rule < c.Violations[j].Rule })
	return c
}

// checkSteps: a final run records each of its pipeline's steps once, final; a succeeded
// one has every step succeeded with one succeeded execution per call.
func checkSteps(c *Checked, r *Record, run RunRow, shape PipelineShape, stepCalls map[string]int) {
	seen := map[string]int{}
	for _, s := range run.Steps {
		seen[s.ID]++
		if !finalStep[s.Status] {
			c.Violations = append(c.Violations, Violation{Rule: "steps", Kind: r.Kind, IDs: []string{run.ID},
				Note: fmt.Sprintf("run %s but step %s %s", run.Status, s.ID, s.Status)})
		}
	}
	for _, id := range shape.Steps {
		if seen[id] > 1 {
			c.Violations = append(c.Violations, Violation{Rule: "steps", Kind: r.Kind, IDs: []string{run.ID},
				Note: fmt.Sprintf("step %s recorded %d times", id, seen[id])})
		}
		if run.Status != "succeeded" {
			continue
		}
		if seen[id] == 0 {
			c.Violations = append(c.Violations, Violation{Rule: "steps", Kind: r.Kind, IDs: []string{run.ID},
				Note: fmt.Sprintf("succeeded run without step %s", id)})
		}
		if want, ok := shape.Calls[id]; ok && stepCalls[run.ID+"/"+id] != want {
			c.Violations = append(c.Violations, Violation{Rule: "steps", Kind: r.Kind, IDs: []string{run.ID},
				Note: fmt.Sprintf("step %s has %d succeeded executions, want %d", id, stepCalls[run.ID+"/"+id], want)})
		}
	}
	for id := range seen {
		if !slices.Contains(shape.Steps, id) {
			c.Violations = append(c.Violations, Violation{Rule: "steps", Kind: r.Kind, IDs: []string{run.ID},
				Note: "unknown step " + id})
		}
	}
}

// sameJSON compares two JSON documents by value ("" and null are the same: no result).
func sameJSON(a, b json.RawMessage) bool {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	if len(a) == 0 {
		a = []byte("null")
	}
	if len(b) == 0 {
		b = []byte("null")
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// answers says a handler's result is the one for the event with key k ({"k": k, ...}).
func answers(result json.RawMessage, k string) bool {
	var v struct {
		K string `json:"k"`
	}
	return json.Unmarshal(result, &v) == nil && v.K == k
}
