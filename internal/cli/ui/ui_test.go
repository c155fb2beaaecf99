package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

func TestDurations(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second:                          "-",
		1700 * time.Microsecond:               "1.7ms",
		12 * time.Millisecond:                 "12ms",
		999400 * time.Microsecond:             "999ms",
		3240 * time.Millisecond:               "3.2s",
		65*time.Second + 400*time.Millisecond: "1m5s",
		time.Minute:                           "1m",
		time.Hour:                             "1h",
		90 * time.Minute:                      "1h30m",
		time.Hour + time.Second:               "1h0m1s",
		36 * time.Hour:                        "36h",
	} {
		require.Equal(t, want, Duration(d), d.String())
	}
	require.Equal(t, "0.0s", Elapsed(20*time.Millisecond))
	require.Equal(t, "4.2s", Elapsed(4240*time.Millisecond))
	require.Equal(t, "2m5s", Elapsed(125*time.Second))
	require.Equal(t, "1.7ms", Millis(1.7))
	require.Equal(t, "-", Time(nil))
	ts := time.Date(2026, 12, 1, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	require.Equal(t, "2026-12-01T10:00:00Z", Time(&ts))
}

func TestTablesPlainAndColoured(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	plain := NewStyles(&buf, false)
	got := plain.Table([]string{"NAME", "STATUS"}, [][]string{{"add", plain.Status("succeeded")}, {"a-longer-name", plain.Status("failed")}})
	require.Equal(t, "NAME           STATUS\nadd            succeeded\na-longer-name  failed\n", got)
	require.Equal(t, "id:    1\nname:  x\n", plain.Fields([][]string{{"id:", "1"}, {"name:", "x"}}))
	require.Equal(t, "", plain.Fields(nil))
	require.Equal(t, "NAME\n", plain.Table([]string{"NAME"}, nil), "headers of an empty list")

	colour := NewStyles(&buf, true)
	require.Equal(t, "\x1b[32msucceeded\x1b[0m", colour.Status("succeeded"))
	require.Equal(t, "\x1b[31mfailed\x1b[0m", colour.Status("failed"))
	require.Equal(t, "other", colour.Status("other"))
	require.Contains(t, colour.Table([]string{"NAME"}, [][]string{{"x"}}), "\x1b[1mNAME")
}

func TestJSONAndYAML(t *testing.T) {
	t.Parallel()
	v := map[string]any{"b": "<x>", "a": []int{1}}
	var j, y bytes.Buffer
	require.NoError(t, JSON(&j, v))
	require.Equal(t, "{\n  \"a\": [\n    1\n  ],\n  \"b\": \"<x>\"\n}\n", j.String())
	require.NoError(t, YAML(&y, v))
	require.Equal(t, "a:\n- 1\nb: <x>\n", y.String())
	require.Equal(t, "null", Indent(nil))
	require.Equal(t, "{\n  \"a\": 1\n}", Indent(json.RawMessage(`{"a":1}`)))
}

func TestWatchPlainLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	v := ExecView{NewStyles(&out, false)}
	states := []string{"queued", "running", "running", "succeeded"}
	final, err := Watch(context.Background(), &out, false, v, client.Execution{ID: "e1", Status: "queued"},
		func(_ context.Context, update func(client.Execution)) (client.Execution, error) {
			var e client.Execution
			for _, s := range states {
				e = client.Execution{ID: "e1", Status: s}
				update(e)
			}
			return e, nil
		})
	require.NoError(t, err)
	require.Equal(t, "succeeded", final.Status)
	require.Equal(t, "execution e1 queued\nexecution e1 running\nexecution e1 succeeded\n", out.String())

	boom := errors.New("boom")
	_, err = Watch(context.Background(), &out, false, v, client.Execution{ID: "e1"},
		func(context.Context, func(client.Execution)) (client.Execution, error) {
			return client.Execution{}, boom
		})
	require.ErrorIs(t, err, boom)
}

func TestRunViewLines(t *testing.T) {
	t.Parallel()
	at := func(s string) *time.Time {
		ts, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return &ts
	}
	v := RunView{NewStyles(&bytes.Buffer{}, false)}
	r1 := client.Run{ID: "r", Status: "running", Steps: []client.Step{{ID: "a", Status: "running", Attempts: 1, StartedAt: at("2026-12-01T10:00:00Z")}}}
	r2 := client.Run{ID: "r", Status: "running", Steps: []client.Step{
		{ID: "a", Status: "running", Attempts: 2, StartedAt: at("2026-12-01T10:00:00Z")},
	}}
	r3 := client.Run{ID: "r", Status: "failed", Steps: []client.Step{
		{ID: "a", Status: "failed", Attempts: 2, StartedAt: at("2026-12-01T10:00:00Z"), FinishedAt: at("2026-12-01T10:00:00.250Z"),
			Error: &client.RunError{Message: "bad input"}},
	}}
	require.Equal(t, []string{"run r running", "step a running"}, v.Lines(nil, r1))
	require.Equal(t, []string{"step a running (attempt 2)"}, v.Lines(&r1, r2))
	require.Equal(t, []string{"run r failed", "step a failed (attempt 2) in 250ms: bad input"}, v.Lines(&r2, r3))
	require.Empty(t, v.Lines(&r3, r3))

	live := v.Live(r1, "⣾ ", 1500*time.Millisecond)
	require.True(t, strings.HasPrefix(live, "⣾ run running  1.5s  r\nSTEP"), live)
	require.True(t, v.Done(r3))
	require.False(t, v.Done(r2))
}
