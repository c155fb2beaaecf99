package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// logExec is a finished execution of add made at second sec, printing out.
func logExec(n int, status, out string) map[string]any {
	return execJSON(status, map[string]any{
		"id":         fmt.Sprintf("0193a5c4-0000-7000-8000-%012d", n),
		"created_at": fmt.Sprintf("2026-12-01T10:00:%02dZ", n),
		"stdout":     out, "stderr": map[bool]string{true: "", false: "boom\n"}[status == "succeeded"],
	})
}

func TestLogs(t *testing.T) {
	t.Parallel()
	f := newFake(t).on("GET /v1/executions", reply(200, map[string]any{"executions": []any{
		logExec(3, "running", ""), logExec(2, "failed", "two\n"), logExec(1, "succeeded", "one\nline 2\n"),
	}}))
	r := on(f).run(t, "logs", "add", "--limit", "3")
	checkGolden(t, "logs", r.golden())
	require.Equal(t, []string{"GET /v1/executions?function=add&limit=3"}, f.lines())

	r = on(f).run(t, "logs", "add", "-o", "json")
	require.Equal(t, 0, r.code)
	require.Equal(t, 2, strings.Count(r.stdout, "\n"), "one JSON envelope per line, finished ones only")
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	// The list grows as the test goes: first one finished and one running execution;
	// then the running one finishes and a new one appears on a second page.
	var mu sync.Mutex
	stage := 0
	f := newFake(t).on("GET /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := stage
		mu.Unlock()
		var page map[string]any
		switch {
		case s == 0:
			page = map[string]any{"executions": []any{logExec(2, "running", ""), logExec(1, "succeeded", "first\n")}}
		case r.URL.Query().Get("cursor") == "":
			page = map[string]any{"executions": []any{logExec(4, "succeeded", "fourth\n"), logExec(3, "succeeded", "third\n")}, "next_cursor": "c2"}
		default:
			page = map[string]any{"executions": []any{logExec(2, "succeeded", "second\n"), logExec(1, "succeeded", "first\n")}}
		}
		reply(200, page)(w, r)
	})
	var out syncBuffer
	root := &cobra.Command{Use: "lambda", SilenceErrors: true, SilenceUsage: true}
	Mount(root, Options{Out: &out, Err: &out, Getenv: on(f).env.get, IsTerminal: func(any) bool { return false }, ConfigDir: t.TempDir()})
	root.SetArgs([]string{"logs", "add", "--follow", "--interval", "10ms"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- Execute(ctx, root, &out) }()

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "first") }, 5*time.Second, 5*time.Millisecond)
	mu.Lock()
	stage = 1
	mu.Unlock()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "fourth") }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.Equal(t, 0, <-done, "interrupting a follow is not an error")

	got := out.String()
	for _, s := range []string{"first", "second", "third", "fourth"} {
		require.Equal(t, 1, strings.Count(got, s+"\n"), "%q printed once in:\n%s", s, got)
	}
	require.Less(t, strings.Index(got, "second"), strings.Index(got, "third"), "oldest first")
	require.Contains(t, f.lines(), "GET /v1/executions?cursor=c2&function=add&limit=100", "older pages read with the cursor")
}

func (e env) get(k string) string { return e[k] }
