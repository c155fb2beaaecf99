package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Row is one line of the results table: a measured load (Result) or a derived figure
// (Note only).
type Row struct {
	Section string // "1 sync warm", …
	Case    string
	Offered float64 // intended rate, 0 for sequential or derived rows
	Result  *Result
	Budget  string
	Verdict string // ok, MISS, FAIL, or empty
	Note    string
}

// SearchReport is one step search with its steps.
type SearchReport struct {
	Section, Case, Criterion string
	Result                   SearchResult
}

// Report is everything a run produced.
type Report struct {
	Settings          Settings
	Rows              []Row
	Searches          []SearchReport
	Notes             []string
	Profile           string  // CPU profile summary of scenario 1, else of scenario 10 (may be empty)
	ProfileOf         string  // which scenario Profile is of (default "scenario 1, first runtime")
	OverheadP50       float64 // ms, scenario 6 sequential
	Started, Finished time.Time
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }

func (r *Report) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) addSearch(section, title string, sr SearchResult, criterion, budget string, ok bool) {
	r.Searches = append(r.Searches, SearchReport{Section: section, Case: title, Criterion: criterion, Result: sr})
	row := Row{Section: section, Case: fmt.Sprintf("%s: highest sustained rate (%s)", title, criterion),
		Budget: budget, Verdict: verdict(ok)}
	if sr.Best > 0 {
		res := sr.BestResult
		row.Offered = sr.Best
		row.Result = &res
		row.Note = fmt.Sprintf("**max %.0f/s**", sr.Best)
	} else {
		row.Note = "no step passed"
	}
	if n := len(sr.Steps); n > 0 && !sr.Steps[n-1].Pass {
		row.Note += fmt.Sprintf("; failed at %.0f/s", failedAbove(sr))
	}
	r.add(row)
}

// failedAbove is the lowest failing rate above the best passing one.
func failedAbove(sr SearchResult) float64 {
	low := 0.0
	for _, s := range sr.Steps {
		if !s.Pass && s.Rate > sr.Best && (low == 0 || s.Rate < low) {
			low = s.Rate
		}
	}
	return low
}

// Empty lists the rows without samples (a scenario that produced nothing).
func (r *Report) Empty() []string {
	var out []string
	for _, row := range r.Rows {
		if row.Result != nil && row.Result.Latency.TotalCount() == 0 {
			out = append(out, row.Section+": "+row.Case)
		}
		if row.Verdict == "FAIL" {
			out = append(out, row.Section+": "+row.Case+": "+row.Note)
		}
	}
	return out
}

const tableHeader = "| # | case | offered/s | achieved/s | n | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | gen. lag p99 ms | budget | verdict |\n" +
	"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|\n"

// Table renders the results table (Markdown).
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString(tableHeader)
	for _, row := range r.Rows {
		sec, _, _ := strings.Cut(row.Section, " ")
		name := row.Case
		if row.Note != "" {
			name += " — " + row.Note
		}
		if row.Result == nil {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | | | | %s | %s |\n", sec, name, row.Budget, row.Verdict)
			continue
		}
		res := row.Result
		offered, achieved := "seq", fmt.Sprintf("%.0f", res.AchievedRate)
		if row.Offered > 0 {
			offered = fmt.Sprintf("%.0f", row.Offered)
		}
		lag := "—"
		if res.SendLag != nil && res.SendLag.TotalCount() > 0 {
			lag = fmt.Sprintf("%.2f", float64(res.SendLag.ValueAtQuantile(99))/1000)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			sec, name, offered, achieved, res.Sent,
			f2(res.Quantile(50)), f2(res.Quantile(90)), f2(res.Quantile(99)), f2(res.Quantile(99.9)), f2(res.Max()),
			errCell(*res), lag, row.Budget, row.Verdict)
	}
	return b.String()
}

func f2(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func errCell(r Result) string {
	if r.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%.2f %%)", r.Errors, r.ErrorRate()*100)
}

// Markdown renders the generated section: machine, command, table, steps, errors, notes, profile.
func (r *Report) Markdown(m Machine, command string) string {
	var b strings.Builder
	kind := "full run (`make bench`)"
	if r.Settings.Quick {
		kind = "quick run (`make bench-quick`: harness check, durations too short for the numbers to mean much)"
	}
	fmt.Fprintf(&b, "## Results — %s\n\n", kind)
	fmt.Fprintf(&b, "- date: %s (took %s)\n", r.Started.UTC().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", m)
	fmt.Fprintf(&b, "- command: `%s`\n", command)
	b.WriteString("- method: open loop (fixed arrival rate; latency from each request's intended send time, so stalls are not hidden), " +
		"HDR histograms (µs, 3 digits); errors = any status other than the expected one, a non-`succeeded` envelope, or a timeout; " +
		"`gen. lag` = the generator's own delay from intended to actual send (p99); `seq` rows are closed-loop, one request at a time.\n\n")
	b.WriteString(r.Table())
	if len(r.Searches) > 0 {
		b.WriteString("\n### Step searches\n\n| search | rate/s | pass | p50 ms | p99 ms | p99.9 ms | errors |\n|---|--:|---|--:|--:|--:|--:|\n")
		for _, s := range r.Searches {
			for _, st := range s.Result.Steps {
				fmt.Fprintf(&b, "| %s %s (%s) | %.0f | %v | %s | %s | %s | %s |\n", s.Section, s.Case, s.Criterion, st.Rate, st.Pass,
					f2(st.Result.Quantile(50)), f2(st.Result.Quantile(99)), f2(st.Result.Quantile(99.9)), errCell(st.Result))
			}
		}
	}
	var errs []string
	for _, row := range r.Rows {
		if row.Result != nil && row.Result.Errors > 0 {
			errs = append(errs, fmt.Sprintf("- %s %s: %s", row.Section, row.Case, strings.Join(row.Result.TopErrors(3), "; ")))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n### Errors seen\n\n" + strings.Join(errs, "\n") + "\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n### Notes\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	if r.Profile != "" {
		of := r.ProfileOf
		if of == "" {
			of = "scenario 1, first runtime"
		}
		b.WriteString("\n### Where the time goes (" + of + ")\n\n" + r.Profile + "\n")
	}
	return b.String()
}

// Markers delimit the generated part of BENCHMARKS.md; the rest is hand-written.
const (
	BeginMarker = "<!-- BEGIN GENERATED BY cmd/lambda-bench: do not edit by hand -->"
	EndMarker   = "<!-- END GENERATED BY cmd/lambda-bench -->"
)

// WriteSection writes generated between the markers of the file at path, keeping
// everything else; a file without markers gets them appended, a missing file is created.
func WriteSection(path, generated string) error {
	block := BeginMarker + "\n\n" + strings.TrimSpace(generated) + "\n\n" + EndMarker + "\n"
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+block), 0o644)
	}
	if err != nil {
		return err
	}
	begin := bytes.Index(old, []byte(BeginMarker))
	end := bytes.Index(old, []byte(EndMarker))
	var out []byte
	if begin >= 0 && end > begin {
		rest := old[end+len(EndMarker):]
		rest = bytes.TrimPrefix(rest, []byte("\n"))
		out = append(append(append([]byte{}, old[:begin]...), block...), rest...)
	} else {
		out = append(append(bytes.TrimRight(old, "\n"), "\n\n"...), block...)
	}
	return os.WriteFile(path, out, 0o644)
}
