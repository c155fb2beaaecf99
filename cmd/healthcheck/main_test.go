package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	require.NoError(t, run([]string{srv.URL + "/healthz"}, io.Discard))
	require.ErrorContains(t, run([]string{srv.URL + "/readyz"}, io.Discard), "status 503")
	require.Error(t, run([]string{"-timeout", "50ms", srv.URL + "/slow"}, io.Discard))
	require.Error(t, run(nil, io.Discard))
	require.Error(t, run([]string{"http://127.0.0.1:1/"}, io.Discard))
}
