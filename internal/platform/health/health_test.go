package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/health"
)

func ready(t *testing.T, rd *health.Readiness) (int, health.Report, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	rd.Ready()(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var r health.Report
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	return rec.Code, r, rec.Body.String()
}

func TestReadiness(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("refused") }

	rd := health.NewReadiness(false)
	code, r, _ := ready(t, rd)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "starting", r.Status, "no checks yet: the process is starting")

	rd.Set([]health.Check{{Name: "postgres", Required: true, Probe: ok}})
	code, _, body := ready(t, rd)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"ready"}`, body, "without itemize only the status")

	rd = health.NewReadiness(false)
	rd.Set([]health.Check{{Name: "postgres", Required: true, Probe: down}, {Name: "temporal", Required: true, Probe: ok}})
	code, r, _ = ready(t, rd)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "unready", r.Status)
	require.Equal(t, "postgres: refused", r.Error)

	rd = health.NewReadiness(true)
	rd.Set([]health.Check{{Name: "postgres", Required: true, Probe: ok}, {Name: "redis", Probe: down}})
	code, r, _ = ready(t, rd)
	require.Equal(t, http.StatusOK, code, "an optional check degrades, it does not fail")
	require.Equal(t, "degraded", r.Status)
	require.Equal(t, map[string]string{"postgres": "ok", "redis": "degraded: refused"}, r.Checks)

	rec := httptest.NewRecorder()
	health.Live()(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.JSONEq(t, `{"status":"ok"}`, rec.Body.String())
}
