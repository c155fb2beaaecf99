package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// asyncAPI answers a POST 202 with a queued envelope and each long-poll of it with running
// until the third, which is final with status final.
func asyncAPI(t *testing.T, path, final string) *httptest.Server {
	t.Helper()
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodPost && r.Header.Get("Prefer") == "respond-async":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"e1","status":"queued"}`)
		case r.Method == http.MethodGet && r.URL.Path == path+"e1" && r.URL.Query().Get("wait") == "30s":
			status := "running"
			if polls.Add(1) >= 3 {
				status = final
			}
			fmt.Fprintf(w, `{"id":"e1","status":%q}`, status)
		default:
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAsyncOpsPollUntilFinal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, path, final, wantErr string
		op                         func(p *Platform) Op
	}{
		{"execution succeeded", "/v1/executions/", "succeeded", "", func(p *Platform) Op {
			return p.AsyncOp(NewClient(1), Function{Name: "f", Language: "python", Version: 1}, Event)
		}},
		{"execution failed", "/v1/executions/", "failed", "execution failed", func(p *Platform) Op {
			return p.AsyncOp(NewClient(1), Function{Name: "f", Language: "python", Version: 1}, Event)
		}},
		{"run succeeded", "/v1/runs/", "succeeded", "", func(p *Platform) Op {
			return p.AsyncRunOp(NewClient(1), "p", 1, Event)
		}},
		{"run canceled", "/v1/runs/", "canceled", "run canceled", func(p *Platform) Op {
			return p.AsyncRunOp(NewClient(1), "p", 1, Event)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := asyncAPI(t, c.path, c.final)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := c.op(&Platform{APIURL: srv.URL, Token: "t"})(ctx)
			if c.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, c.wantErr)
			}
		})
	}
}

func TestAsyncOpRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"detail":"slow down"}`)
	}))
	defer srv.Close()
	err := (&Platform{APIURL: srv.URL}).AsyncRunOp(NewClient(1), "p", 1, Event)(context.Background())
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "post: status 429: slow down"), err.Error())
}
