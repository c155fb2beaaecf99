package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/store"
)

// pythonPost sends body with Python's urllib (which writes the whole body before it
// reads the answer) and prints the status, the Content-Type and the body, or the error.
const pythonPost = `
import sys, urllib.request, urllib.error
url, path = sys.argv[1], sys.argv[2]
data = open(path, 'rb').read()
req = urllib.request.Request(url, data=data, method='POST',
    headers={'Content-Type': 'application/json', 'Language-Title': 'python'})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(r.status); print(r.headers.get('Content-Type')); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.headers.get('Content-Type')); print(e.read().decode())
except Exception as e:
    print('ERROR'); print(type(e).__name__); print(e)
`

// TestOversizedBodiesAreAnswered413: a 7 MiB body (the limit is 6 MiB) is answered 413
// problem+json that Python's urllib, curl (with and without Expect: 100-continue) and Go's
// net/http (sized and chunked) all read — not a connection reset — on the api's own
// http.Server settings; a registration over its limit too.
func TestOversizedBodiesAreAnswered413(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOption(func(d *api.Deps, _ *store.Store, _ *cache.Cache) {
		d.Config.MaxEventBytes = 6 << 20
	}))
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource)).status)
	srv := api.HTTPServer(api.Config{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 120 * time.Second}, f.h, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()
	invoke := base + "/v1/functions/add/invoke"

	event := append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 7<<20)...), `"}`...)
	path := filepath.Join(t.TempDir(), "event.json")
	require.NoError(t, os.WriteFile(path, event, 0o600))
	requireProblem := func(t *testing.T, status, contentType, body string) {
		t.Helper()
		require.Equal(t, "413", status, "%.300s", body)
		require.Equal(t, "application/problem+json", contentType)
		var p map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &p), body)
		require.Contains(t, p["detail"], "larger than")
	}

	t.Run("python urllib", func(t *testing.T) {
		python, err := exec.LookPath("/usr/bin/python3")
		if err != nil {
			t.Skip("no /usr/bin/python3")
		}
		for range 3 {
			out, err := exec.Command(python, "-c", pythonPost, invoke, path).CombinedOutput()
			require.NoError(t, err, "%s", out)
			lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 3)
			require.Len(t, lines, 3, "%s", out)
			requireProblem(t, lines[0], lines[1], lines[2])
		}
	})
	for _, expect := range []string{"", "Expect:"} {
		t.Run("curl "+expect, func(t *testing.T) {
			curl, err := exec.LookPath("curl")
			if err != nil {
				t.Skip("no curl")
			}
			bodyPath := filepath.Join(t.TempDir(), "answer")
			args := []string{"-sS", "-o", bodyPath, "-w", "%{http_code}\n%{content_type}", "-H", "Language-Title: python",
				"-H", "Content-Type: application/json", "--data-binary", "@" + path, invoke}
			if expect != "" {
				args = append([]string{"-H", expect}, args...) // no 100-continue: curl sends it all
			}
			out, err := exec.Command(curl, args...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			answer, err := os.ReadFile(bodyPath)
			require.NoError(t, err)
			lines := strings.SplitN(string(out), "\n", 2)
			requireProblem(t, lines[0], lines[1], string(answer))
		})
	}
	for _, chunked := range []bool{false, true} {
		name := map[bool]string{false: "go sized", true: "go chunked"}[chunked]
		t.Run(name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(event)
			if chunked {
				body = io.MultiReader(body) // no length known: chunked
			}
			req, err := http.NewRequestWithContext(context.Background(), "POST", invoke, body)
			require.NoError(t, err)
			req.Header.Set("Language-Title", "python")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			requireProblem(t, resp.Status[:3], resp.Header.Get("Content-Type"), string(raw))
		})
	}
	t.Run("python urllib, a registration", func(t *testing.T) {
		python, err := exec.LookPath("/usr/bin/python3")
		if err != nil {
			t.Skip("no /usr/bin/python3")
		}
		src, _ := json.Marshal(map[string]any{"name": "huge", "language": "python", "source": strings.Repeat("#", 7<<20)})
		p := filepath.Join(t.TempDir(), "register.json")
		require.NoError(t, os.WriteFile(p, src, 0o600))
		out, err := exec.Command(python, "-c", pythonPost, base+"/v1/functions", p).CombinedOutput()
		require.NoError(t, err, "%s", out)
		lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 3)
		require.Len(t, lines, 3, "%s", out)
		require.Equal(t, "413", lines[0], "%s", out)
		require.Equal(t, "application/problem+json", lines[1])
	})
}
