package soak

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func syncRec(seq int64, key, id string) Record {
	return Record{Seq: seq, Sent: t0.Add(time.Duration(seq) * time.Second), Kind: SyncPython, Key: key, HTTP: 200, Attempts: 1,
		FirstOK: true, ID: id, Status: "succeeded", Result: json.RawMessage(`{"ok":true,"k":"` + key + `"}`), LatencyMS: 5}
}

func execRow(id, key, status string) ExecRow {
	return ExecRow{ID: id, Key: key, Status: status, Mode: "sync", Result: json.RawMessage(`{"k": "` + key + `", "ok": true}`), Hash: "h-" + id}
}

var shapes = map[Kind]PipelineShape{RunAsync: {Steps: []string{"double", "nap", "last"}, Calls: map[string]int{"double": 3, "last": 1}}}

func TestCheck(t *testing.T) {
	t.Parallel()
	goodRun := RunRow{ID: "r1", Status: "succeeded", Key: "kr", Hash: "hr",
		Steps: []StepRow{{"double", "succeeded"}, {"nap", "succeeded"}, {"last", "succeeded"}}}
	runExecs := []ExecRow{
		{ID: "x1", RunID: "r1", StepID: "double", Status: "succeeded"}, {ID: "x2", RunID: "r1", StepID: "double", Status: "succeeded"},
		{ID: "x3", RunID: "r1", StepID: "double", Status: "succeeded"}, {ID: "x4", RunID: "r1", StepID: "last", Status: "succeeded"},
	}
	asyncRun := Record{Seq: 9, Kind: RunAsync, Key: "kr", HTTP: 202, ID: "r1", Status: "queued"}
	cases := []struct {
		name    string
		records []Record
		db      DB
		snap    *Snapshot
		rules   []string // the violations' rules, in order
	}{
		{name: "all recorded", records: []Record{syncRec(1, "k1", "e1"), asyncRun},
			db: DB{Execs: append([]ExecRow{execRow("e1", "k1", "succeeded")}, runExecs...), Runs: []RunRow{goodRun}}},
		{name: "an acknowledged execution is lost", records: []Record{syncRec(1, "k1", "e1")}, rules: []string{"lost"}},
		{name: "an unacknowledged request may be missing", records: []Record{{Kind: SyncPython, Key: "k1", Err: "connection refused"}}},
		{name: "one key ran twice", records: []Record{syncRec(1, "k1", "e1")},
			db: DB{Execs: []ExecRow{execRow("e1", "k1", "succeeded"), execRow("e2", "k1", "succeeded")}}, rules: []string{"duplicate"}},
		{name: "an unanswered request that ran twice is a duplicate too", records: []Record{{Kind: SyncNode, Key: "k1", Err: "EOF"}},
			db: DB{Execs: []ExecRow{execRow("e1", "k1", "succeeded"), execRow("e2", "k1", "failed")}}, rules: []string{"duplicate"}},
		{name: "recorded status differs from the answer", records: []Record{syncRec(1, "k1", "e1")},
			db: DB{Execs: []ExecRow{execRow("e1", "k1", "failed")}}, rules: []string{"mismatch"}},
		{name: "an answer for another request", records: []Record{func() Record {
			r := syncRec(1, "k1", "e1")
			r.Result = json.RawMessage(`{"ok":true,"k":"k2"}`)
			return r
		}()}, db: DB{Execs: []ExecRow{execRow("e1", "k2", "succeeded")}}, rules: []string{"wrong-answer"}},
		{name: "an accepted async execution never finishes", records: []Record{{Kind: Async, Key: "ka", HTTP: 202, ID: "a1", Status: "queued"}},
			db: DB{Execs: []ExecRow{execRow("a1", "ka", "running")}}, rules: []string{"not-final"}},
		{name: "a succeeded run misses a map item's execution", records: []Record{asyncRun},
			db: DB{Execs: runExecs[1:], Runs: []RunRow{goodRun}}, rules: []string{"steps"}},
		{name: "a final row was rewritten after the snapshot", records: []Record{syncRec(1, "k1", "e1")},
			db:   DB{Execs: []ExecRow{execRow("e1", "k1", "succeeded")}},
			snap: &Snapshot{At: t0, Execs: map[string]string{"e1": "h-old"}, Runs: map[string]string{}}, rules: []string{"rewritten"}},
		{name: "a final run vanished", db: DB{},
			snap: &Snapshot{At: t0, Execs: map[string]string{}, Runs: map[string]string{"r9": "h"}}, rules: []string{"rewritten"}},
		{name: "a cell recorded twice", records: []Record{{Kind: Cell, Seq: 4, HTTP: 200, Session: "s1", Cell: 2, Status: "succeeded", Result: json.RawMessage(`8`)}},
			db: DB{Execs: []ExecRow{{ID: "c1", Session: "s1", Index: 2, Status: "succeeded", Result: json.RawMessage(`8`)},
				{ID: "c2", Session: "s1", Index: 2, Status: "succeeded", Result: json.RawMessage(`8`)}}}, rules: []string{"duplicate"}},
		{name: "a cell answered another cell's value", records: []Record{{Kind: Cell, Seq: 4, HTTP: 200, Session: "s1", Cell: 2, Status: "succeeded", Result: json.RawMessage(`6`)}},
			db: DB{Execs: []ExecRow{{ID: "c1", Session: "s1", Index: 2, Status: "succeeded", Result: json.RawMessage(`6`)}}}, rules: []string{"wrong-answer"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Check(tc.records, tc.db, tc.snap, shapes)
			var rules []string
			for _, v := range c.Violations {
				rules = append(rules, v.Rule)
			}
			require.Equal(t, tc.rules, rules, "%v", c.Violations)
		})
	}
}

func TestCheckCountsAsyncWork(t *testing.T) {
	t.Parallel()
	c := Check([]Record{
		{Kind: Async, Key: "a", HTTP: 202, ID: "a1"}, {Kind: Async, Key: "b", HTTP: 202, ID: "a2"},
		{Kind: Async, Key: "c", Err: "connection reset"},
	}, DB{Execs: []ExecRow{execRow("a1", "a", "succeeded"), execRow("a2", "b", "failed")}}, nil, nil)
	require.Empty(t, c.Violations)
	require.Equal(t, 2, c.AsyncAccepted)
	require.Equal(t, 2, c.AsyncFinal)
	require.Equal(t, 1, c.AsyncFailed)
}

func TestWindowsAvailabilityAndRecovery(t *testing.T) {
	t.Parallel()
	var rs []Record
	for i := range 20 {
		r := syncRec(int64(i), "k", "e")
		if i == 11 || i == 13 { // two failures after the fault at t0+10s, 2 s apart
			r.HTTP, r.Status, r.FirstOK = 503, "", false
			r.LatencyMS = 500
		}
		rs = append(rs, r)
	}
	faults := []Fault{{Kind: KillAPI, Start: t0.Add(10 * time.Second), End: t0.Add(11 * time.Second)},
		{Kind: RestartRedis, Start: t0.Add(15 * time.Second), End: t0.Add(16 * time.Second)}}
	ws := Windows(rs, faults, t0.Add(20*time.Second))
	require.Len(t, ws, 2)
	require.Equal(t, 5, ws[0].Avail.Offered) // 10..14
	require.Equal(t, 3, ws[0].Avail.OK)
	require.Equal(t, 2, ws[0].Errors)
	require.Equal(t, 2500*time.Millisecond, ws[0].Recovery) // from 11 s to 13.5 s
	require.Zero(t, ws[1].Errors)
	require.Zero(t, ws[1].Recovery)
	sum := Summaries(ws, []string{KillAPI, RestartRedis, StopTemporal}, map[string]time.Time{"e9": t0.Add(12 * time.Second)})
	require.Len(t, sum, 3)
	require.Equal(t, []string{"e9"}, sum[0].Violations)
	require.Equal(t, 0, sum[2].Injected)
	all := avail(rs, func(*Record) bool { return true })
	require.InDelta(t, 0.9, all.Ratio(), 1e-9)
}

func TestTimelineBuckets(t *testing.T) {
	t.Parallel()
	rs := []Record{syncRec(0, "a", "1"), syncRec(0, "b", "2"), {Kind: SyncRust, Sent: t0.Add(1500 * time.Millisecond)}}
	bs := Timeline(rs, t0, t0.Add(2*time.Second), time.Second)
	require.Len(t, bs, 3)
	require.Equal(t, 2, bs[0].OK)
	require.Equal(t, 1, bs[1].Errors)
	require.Equal(t, 5.0, bs[0].P99)
}

func TestWriteSectionKeepsTheHandWrittenPart(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/R.md"
	require.NoError(t, WriteSection(path, "first"))
	require.NoError(t, appendText(path, "\n## Notes by hand\n"))
	require.NoError(t, WriteSection(path, "second"))
	b, err := readText(path)
	require.NoError(t, err)
	require.NotContains(t, b, "first")
	require.Contains(t, b, "second")
	require.Contains(t, b, "## Notes by hand")
}

func TestReportAndPlot(t *testing.T) {
	t.Parallel()
	var rs []Record
	for i := range 30 {
		r := syncRec(int64(i), "k", "e")
		if i == 12 {
			r.FirstOK, r.Attempts = false, 2
		}
		rs = append(rs, r)
	}
	res := &Result{Config: Config{Faults: []string{KillAPI, StopTemporal}, Rates: DefaultRates(), Seed: 3},
		Started: t0, Finished: t0.Add(30 * time.Second), Records: rs,
		Faults:  []Fault{{Kind: KillAPI, Target: "api-2", Start: t0.Add(11 * time.Second), End: t0.Add(12 * time.Second)}},
		Checked: Checked{Violations: []Violation{{Rule: "lost", Kind: SyncPython, IDs: []string{"e"}, Note: "gone"}}}}
	sum := Summarize(res)
	require.Equal(t, 1, sum.Lost)
	require.Equal(t, 1, sum.Faults[0].Errors)
	require.Equal(t, []string{"e"}, sum.Faults[0].Violations)
	md := Markdown(res, sum, "make soak", "t.svg", "test machine", "")
	require.Contains(t, md, "| kill-api | 1 | 100.000 % (19 of 19) | 1 |")
	require.Contains(t, md, "| stop-temporal | 0 |")
	require.Contains(t, md, "- lost (sync-python): gone — e")
	for _, name := range []string{"t.svg", "t.png"} {
		path := filepath.Join(t.TempDir(), name)
		require.NoError(t, Plot(res, path))
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000))
	}
}

func TestErrorSamplesSayWhenARetrySucceeded(t *testing.T) {
	t.Parallel()
	long := "503 " + strings.Repeat("x", 300)
	r := syncRec(1, "k", "e")
	r.FirstOK, r.FirstErr, r.Attempts = false, long, 2
	failed := Record{Kind: SyncNode, FirstErr: long, Err: long}
	got := errorSamples([]Record{r, failed}, 5)
	require.Len(t, got, 2)
	require.True(t, strings.HasSuffix(got[0], "(a retry succeeded)") || strings.HasSuffix(got[1], "(a retry succeeded)"), "%v", got)
}
