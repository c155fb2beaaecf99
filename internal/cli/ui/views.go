package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

// ExecView shows a wait for an execution: one spinner line.
type ExecView struct{ Styles }

// Live is "⣾ add v1 running  3.2s  <id>".
func (v ExecView) Live(e client.Execution, spin string, elapsed time.Duration) string {
	parts := []string{strings.TrimSpace(spin)}
	if e.Function != "" {
		parts = append(parts, FunctionVersion(e.Function, e.Version))
	}
	parts = append(parts, v.Status(e.Status), " "+Elapsed(elapsed), " "+v.Faint(e.ID))
	return strings.Join(parts, " ")
}

// Lines is one line per status change.
func (v ExecView) Lines(prev *client.Execution, cur client.Execution) []string {
	if prev != nil && prev.Status == cur.Status {
		return nil
	}
	return []string{fmt.Sprintf("execution %s %s", cur.ID, cur.Status)}
}

// Done reports whether the execution has finished.
func (ExecView) Done(e client.Execution) bool { return e.Finished() }

// FunctionVersion is "add v3" ("add" when the version is unknown).
func FunctionVersion(name string, version int) string {
	if version <= 0 {
		return name
	}
	return name + " v" + strconv.Itoa(version)
}

// RunView shows a wait for a pipeline run: a status line over a table of its steps.
type RunView struct{ Styles }

// Live is the run's line and its steps' table, durations counted up to now.
func (v RunView) Live(r client.Run, spin string, elapsed time.Duration) string {
	parts := []string{strings.TrimSpace(spin), "run"}
	if r.Pipeline != "" {
		parts = append(parts, FunctionVersion(r.Pipeline, r.Version))
	}
	head := strings.Join(append(parts, v.Status(r.Status), " "+Elapsed(elapsed), " "+v.Faint(r.ID)), " ")
	if len(r.Steps) == 0 {
		return head
	}
	return head + "\n" + strings.TrimRight(v.Steps(r.Steps, time.Now()), "\n")
}

// Lines are a line for the run's status change and one for each step that started,
// retried or finished since prev.
func (v RunView) Lines(prev *client.Run, cur client.Run) []string {
	var out []string
	if prev == nil || prev.Status != cur.Status {
		out = append(out, fmt.Sprintf("run %s %s", cur.ID, cur.Status))
	}
	before := map[string]client.Step{}
	if prev != nil {
		for _, s := range prev.Steps {
			before[s.ID] = s
		}
	}
	for _, s := range cur.Steps {
		if p, ok := before[s.ID]; ok && p.Status == s.Status && p.Attempts == s.Attempts {
			continue
		}
		line := fmt.Sprintf("step %s %s", s.ID, s.Status)
		if s.Attempts > 1 {
			line += fmt.Sprintf(" (attempt %d)", s.Attempts)
		}
		if client.Finished(s.Status) && s.StartedAt != nil && s.FinishedAt != nil {
			line += " in " + Duration(s.FinishedAt.Sub(*s.StartedAt))
		}
		if s.Error != nil && s.Error.Message != "" {
			line += ": " + s.Error.Message
		}
		out = append(out, line)
	}
	return out
}

// Done reports whether the run has finished.
func (RunView) Done(r client.Run) bool { return r.Finished() }

// Steps is the table of a run's steps: step, status, attempts, duration; a running
// step's duration counts up to now.
func (s Styles) Steps(steps []client.Step, now time.Time) string {
	rows := make([][]string, 0, len(steps))
	for _, st := range steps {
		status := s.Status(st.Status)
		if st.Items != nil {
			status += fmt.Sprintf(" %d/%d", st.Items.Succeeded+st.Items.Failed, st.Items.Total)
		}
		if st.Until != nil && !client.Finished(st.Status) {
			status += " until " + Time(st.Until)
		}
		attempts := "-"
		if st.Attempts > 0 {
			attempts = strconv.Itoa(st.Attempts)
		}
		dur := "-"
		switch {
		case st.StartedAt != nil && st.FinishedAt != nil:
			dur = Duration(st.FinishedAt.Sub(*st.StartedAt))
		case st.StartedAt != nil && !client.Finished(st.Status):
			dur = Duration(now.Sub(*st.StartedAt))
		}
		rows = append(rows, []string{st.ID, status, attempts, dur})
	}
	return s.Table([]string{"STEP", "STATUS", "ATTEMPTS", "DURATION"}, rows)
}
