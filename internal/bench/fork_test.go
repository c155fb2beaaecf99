package bench

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const python = "/usr/bin/python3"

func TestWatchdogForksPerRequest(t *testing.T) {
	// The handler answers with its interpreter's pid: a fresh process per request shows up
	// as a new pid on every call.
	wd, err := StartWatchdog(python, "import os\ndef handler(event, context):\n    return {'pid': os.getpid(), 'n': event['n']}\n")
	require.NoError(t, err)
	t.Cleanup(func() { _ = wd.Close() })
	c := NewClient(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pids := map[string]bool{}
	for range 3 {
		status, body, err := Do(ctx, c, http.MethodPost, wd.URL, nil, []byte(`{"n":7}`))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, string(body))
		require.Contains(t, string(body), `"n": 7`)
		pids[string(body)] = true
	}
	require.Len(t, pids, 3, "every request ran in a new interpreter")
	require.NoError(t, HTTPOp(c, wd.Request(Event))(ctx))
}

func TestWatchdogReportsAFailingHandler(t *testing.T) {
	wd, err := StartWatchdog(python, "def handler(event, context):\n    raise ValueError('boom')\n")
	require.NoError(t, err)
	t.Cleanup(func() { _ = wd.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = HTTPOp(NewClient(1), wd.Request(Event))(ctx)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "status 500") && strings.Contains(err.Error(), "exit status 1"), err.Error())
}
