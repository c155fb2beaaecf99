package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends one request to the api as the admin (tenant "default").
func call(t *testing.T, method, path, body string, headers ...string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, stack.APIURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+stack.AdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func registerBody(name, language, source string, extra map[string]any) string {
	m := map[string]any{"name": name, "language": language, "source": source}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func mustRegister(t *testing.T, name, language, source string, extra map[string]any) {
	t.Helper()
	r := call(t, "POST", "/v1/functions", registerBody(name, language, source, extra))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
}

func invoke(t *testing.T, name, title, event string, headers ...string) reply {
	t.Helper()
	return call(t, "POST", "/v1/functions/"+name+"/invoke", event, append([]string{"Language-Title", title}, headers...)...)
}

func errorOf(r reply) map[string]any {
	e, _ := r.body["error"].(map[string]any)
	return e
}
