package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lambda-microservice/lambda/internal/faas"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// Platform is a running stack as the benchmark sees it: its public API (with a bearer
// token) and the local provider, which lists the runtime hosts' replica URLs.
type Platform struct {
	APIURL      string
	ProviderURL string
	Token       string
	// RuntimeSecret is the runtime hosts' invoke secret, for the calls straight to a replica.
	RuntimeSecret string
	// Client is used for setup and sequential calls; each load makes its own pool.
	Client *Client
}

// Function is a registered function version.
type Function struct {
	Name     string
	Language string // runtime title (python, node, rust)
	Version  int
	// SHA256 is the hash a runtime host builds the version by (its source's sha256), not
	// the version's sha256, which covers its settings too.
	SHA256 string
	Source string
}

func (p *Platform) client() *Client {
	if p.Client == nil {
		p.Client = NewClient(16)
	}
	return p.Client
}

// Header is the API's auth header plus extra key/value pairs.
func (p *Platform) Header(kv ...string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+p.Token)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// Register creates a function (POST /v1/functions) or, when it exists, adds a version
// (PUT /v1/functions/{name}); extra holds settings such as cache_ttl_s.
func (p *Platform) Register(ctx context.Context, name, language, source string, extra map[string]any) (Function, error) {
	m := map[string]any{"name": name, "language": language, "source": source}
	for k, v := range extra {
		m[k] = v
	}
	body, _ := json.Marshal(m)
	status, resp, err := Do(ctx, p.client(), http.MethodPost, p.APIURL+"/v1/functions", p.Header(), body)
	if err == nil && status == http.StatusConflict {
		delete(m, "name")
		delete(m, "language")
		body, _ = json.Marshal(m)
		status, resp, err = Do(ctx, p.client(), http.MethodPut, p.APIURL+"/v1/functions/"+url.PathEscape(name), p.Header(), body)
	}
	if err != nil {
		return Function{}, fmt.Errorf("register %s: %w", name, err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return Function{}, fmt.Errorf("register %s: %w", name, StatusError(status, resp))
	}
	var out struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return Function{}, fmt.Errorf("register %s: %w", name, err)
	}
	sum := sha256.Sum256([]byte(source))
	return Function{Name: name, Language: language, Version: out.Version, SHA256: hex.EncodeToString(sum[:]), Source: source}, nil
}

// InvokeRequest is a sync invocation of f's version through the whole stack.
func (p *Platform) InvokeRequest(f Function, event []byte) Request {
	return Request{
		Method: http.MethodPost,
		URL:    fmt.Sprintf("%s/v1/functions/%s/invoke?version=%d", p.APIURL, url.PathEscape(f.Name), f.Version),
		Header: p.Header("Language-Title", f.Language),
		Body:   event,
		Check:  checkEnvelope,
	}
}

// checkEnvelope accepts an execution envelope with status succeeded.
func checkEnvelope(body []byte) error {
	var e struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if e.Status != "succeeded" {
		return fmt.Errorf("execution %s", e.Status)
	}
	return nil
}

// Invoke calls f once through the whole stack and fails unless it succeeded.
func (p *Platform) Invoke(ctx context.Context, f Function, event []byte) error {
	return HTTPOp(p.client(), p.InvokeRequest(f, event))(ctx)
}

// AsyncOp starts f asynchronously (Prefer: respond-async) and long-polls the execution
// until it is finished; it succeeds when the execution succeeded. Its latency is from the
// POST to the moment the final envelope is visible to the client.
func (p *Platform) AsyncOp(c *Client, f Function, event []byte) Op {
	post := p.InvokeRequest(f, event)
	post.Header = p.Header("Language-Title", f.Language, "Prefer", "respond-async")
	return p.asyncOp(c, post, "execution", "/v1/executions/", finished)
}

// asyncOp sends post, which the API answers 202 with the envelope of what it started (a
// what: execution or run), and long-polls GET {APIURL}{path}{id}?wait=30s until done says
// the status is final; it fails unless the final status is succeeded.
func (p *Platform) asyncOp(c *Client, post Request, what, path string, done func(status string) bool) Op {
	auth := p.Header()
	return func(ctx context.Context) error {
		status, body, err := Do(ctx, c, post.Method, post.URL, post.Header, post.Body)
		if err != nil {
			return fmt.Errorf("post: %w", err)
		}
		if status != http.StatusAccepted {
			return fmt.Errorf("post: %w", StatusError(status, body))
		}
		var e struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
			return fmt.Errorf("post: no %s id in %q", what, body)
		}
		for !done(e.Status) {
			status, body, err = Do(ctx, c, http.MethodGet, p.APIURL+path+e.ID+"?wait=30s", auth, nil)
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			if status != http.StatusOK {
				return fmt.Errorf("get: %w", StatusError(status, body))
			}
			if err := json.Unmarshal(body, &e); err != nil {
				return fmt.Errorf("get: %w", err)
			}
		}
		if e.Status != "succeeded" {
			return fmt.Errorf("%s %s", what, e.Status)
		}
		return nil
	}
}

func finished(status string) bool {
	switch status {
	case "succeeded", "failed", "timeout", "canceled":
		return true
	}
	return false
}

// Replicas are the ready replica base URLs of a runtime function (e.g. runtime-python),
// from the provider's GET /system/endpoints/{name}.
func (p *Platform) Replicas(ctx context.Context, function string) ([]string, error) {
	return faas.FetchEndpoints(ctx, http.DefaultClient, p.ProviderURL, function)
}

// DirectRequest calls a runtime host replica directly with the host's own request format
// (runtimes/README.md), for f and event, with a fresh execution id per request. Like the
// platform's own calls it sends the source only when withSource is set (the first call to
// a host that has not seen the sha256; the host answers 428 otherwise).
func DirectRequest(replica string, f Function, event []byte, timeout time.Duration, withSource bool, secret string) Request {
	var seq atomic.Uint64
	source := ""
	if withSource {
		source = f.Source
	}
	return Request{
		Method: http.MethodPost,
		URL:    strings.TrimRight(replica, "/") + "/",
		Header: http.Header{platformsecret.RuntimeHeader: []string{secret}},
		NewBody: func() []byte {
			b, _ := json.Marshal(faas.Call{
				ExecutionID: fmt.Sprintf("bench-direct-%d-%d", os.Getpid(), seq.Add(1)),
				Function:    f.Name, Version: f.Version, SHA256: f.SHA256, Source: source,
				Event: event, TimeoutMS: int(timeout / time.Millisecond), MemoryMB: 128,
			})
			return b
		},
		Check: checkEnvelope,
	}
}
