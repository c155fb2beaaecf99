// Package faas calls the runtime functions (runtime-python, runtime-node, ...): through
// the OpenFaaS gateway with github.com/openfaas/go-sdk, or on the direct route straight to
// a replica (its own HTTP/1.1 client, h1.go; the replica list from the provider's
// endpoints API, FetchEndpoints), the gateway as fallback. It speaks the runtime host's
// HTTP contract (runtimes/README.md): send the script's sha256 without its source, resend
// with the source when the host answers 428 (cold), and translate every answer into a
// Result or a fault kind.
package faas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	sdk "github.com/openfaas/go-sdk"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// Call is one request to a runtime function.
type Call struct {
	ExecutionID string `json:"execution_id"`
	Tenant      string `json:"tenant,omitempty"`
	Function    string `json:"function"`
	Version     int    `json:"version"`
	SHA256      string `json:"sha256"`
	Source      string `json:"source,omitempty"`
	// Lock is the version's dependency lock, sent with the source: the host installs it
	// (once per lock, shared) before the build and gives the workers the installed set.
	Lock      *deps.Lock        `json:"lock,omitempty"`
	Event     json.RawMessage   `json:"event"`
	TimeoutMS int               `json:"timeout_ms"`
	MemoryMB  int               `json:"memory_mb"`
	Env       map[string]string `json:"env,omitempty"`
	BuildOnly bool              `json:"build_only,omitempty"`
	// MaxResultBytes is the platform's result cap: a host may refuse a larger result
	// itself (failed, error type ResultTooLarge); the client reads no answer much larger.
	MaxResultBytes int `json:"max_result_bytes,omitempty"`
}

// ResultTooLarge is the error type of an execution whose result is over the cap, whether
// the runtime host or the platform found it so.
const ResultTooLarge = "ResultTooLarge"

// answerSlack is what an answer may hold beside its result: the captured output (capped
// by the host, then JSON-escaped), the error and the envelope's fields.
const answerSlack = 2 << 20

// Result is the runtime host's answer for one execution.
type Result struct {
	Status          string          `json:"status"`
	Result          json.RawMessage `json:"result"`
	Error           *Error          `json:"error"`
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	DurationMS      float64         `json:"duration_ms"`
	Cold            bool            `json:"cold"`
}

// Error is a handler failure or a host refusal.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Config locates the OpenFaaS gateway.
type Config struct {
	GatewayURL string `env:"LAMBDA_GATEWAY_URL" envDefault:"http://127.0.0.1:8080"`
	Namespace  string `env:"LAMBDA_FUNCTION_NAMESPACE" envDefault:"openfaas-fn"`
	// Route is RouteGateway or RouteDirect.
	Route string `env:"LAMBDA_INVOKE_ROUTE" envDefault:"gateway"`
	// EndpointsURL is the provider answering GET /system/endpoints/{function} (direct route).
	EndpointsURL string `env:"LAMBDA_ENDPOINTS_URL"`
	// EndpointTemplate builds a replica URL instead, e.g. a Kubernetes Service:
	// http://{function}.{namespace}.svc.cluster.local:8080 (direct route).
	EndpointTemplate string        `env:"LAMBDA_ENDPOINT_TEMPLATE"`
	EndpointsRefresh time.Duration `env:"LAMBDA_ENDPOINTS_REFRESH" envDefault:"2s"`
	// RuntimeSecretFile (or RuntimeSecret inline) is the runtime functions' invoke secret,
	// sent with every call: a runtime host runs nothing without it.
	RuntimeSecretFile string `env:"LAMBDA_RUNTIME_SECRET_FILE"`
	RuntimeSecret     string `env:"LAMBDA_RUNTIME_SECRET"`
	// GatewayUserFile and GatewayPasswordFile are the gateway's basic-auth credentials
	// (the files of its secret_mount_path: basic-auth-user, basic-auth-password), sent on
	// its management API.
	GatewayUserFile     string `env:"LAMBDA_GATEWAY_USER_FILE"`
	GatewayPasswordFile string `env:"LAMBDA_GATEWAY_PASSWORD_FILE"`
	// GatewayUser and GatewayPassword give the same credentials inline (a Secret's keys).
	GatewayUser     string `env:"LAMBDA_GATEWAY_USER"`
	GatewayPassword string `env:"LAMBDA_GATEWAY_PASSWORD"`
}

// Client invokes runtime functions through the OpenFaaS gateway.
type Client struct {
	sdk       *sdk.Client
	http      *http.Client
	namespace string
	gateway   string
	direct    *resolver // nil on the gateway route
	h1        *h1Client // the direct route's client
	secret    string    // the runtime hosts' invoke secret
}

// NewTransport returns the pooled keep-alive transport used on every platform hop.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// New returns a client for the gateway in cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.GatewayURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("faas: invalid gateway url %q", cfg.GatewayURL)
	}
	secret, err := platformsecret.Load(cfg.RuntimeSecret, cfg.RuntimeSecretFile)
	if err != nil {
		return nil, fmt.Errorf("faas: LAMBDA_RUNTIME_SECRET(_FILE): %w", err)
	}
	if !validID(secret) {
		return nil, errors.New("faas: the runtime secret holds control characters")
	}
	var auth sdk.ClientAuth
	if cfg.GatewayUser != "" || cfg.GatewayPassword != "" {
		auth = &sdk.BasicAuth{Username: cfg.GatewayUser, Password: cfg.GatewayPassword}
	} else if cfg.GatewayUserFile != "" || cfg.GatewayPasswordFile != "" {
		user, err1 := os.ReadFile(cfg.GatewayUserFile)
		pass, err2 := os.ReadFile(cfg.GatewayPasswordFile)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("faas: gateway credentials: %w", err)
		}
		auth = &sdk.BasicAuth{Username: strings.TrimSpace(string(user)), Password: strings.TrimSpace(string(pass))}
	}
	hc := &http.Client{Transport: NewTransport()}
	c := &Client{sdk: sdk.NewClient(u, auth, hc), http: hc, namespace: cfg.Namespace, gateway: cfg.GatewayURL, secret: secret}
	switch cfg.Route {
	case RouteGateway, "":
	case RouteDirect:
		if c.direct, err = newResolver(cfg, hc); err != nil {
			return nil, err
		}
		c.h1 = newH1Client(secret)
	default:
		return nil, fmt.Errorf("faas: LAMBDA_INVOKE_ROUTE=%q: want gateway or direct", cfg.Route)
	}
	return c, nil
}

// SDK exposes the OpenFaaS client for management calls (deploy, status).
func (c *Client) SDK() *sdk.Client { return c.sdk }

// Run calls the runtime function fn. The source is sent only when the host asks for it.
func (c *Client) Run(ctx context.Context, fn string, call Call) (Result, error) {
	source, lock := call.Source, call.Lock
	if !call.BuildOnly {
		call.Source, call.Lock = "", nil
	}
	res, status, err := c.post(ctx, fn, &call)
	if err == nil && status == http.StatusPreconditionRequired {
		call.Source, call.Lock = source, lock
		res, status, err = c.post(ctx, fn, &call)
	}
	if err != nil {
		return Result{}, err
	}
	return res, statusError(fn, status, res)
}

func (c *Client) post(ctx context.Context, fn string, call *Call) (Result, int, error) {
	body, err := json.Marshal(call)
	if err != nil {
		return Result{}, 0, fault.Wrap(fault.Invalid, err, "event cannot be encoded")
	}
	resp, err := c.send(ctx, fn, call.ExecutionID, body)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, 0, ctx.Err()
		}
		return Result{}, 0, fault.Wrap(fault.Unavailable, err, "runtime %s unreachable", fn)
	}
	defer resp.Body.Close()
	answer := io.Reader(resp.Body)
	limit := int64(-1)
	if call.MaxResultBytes > 0 {
		limit = int64(call.MaxResultBytes) + answerSlack
		answer = io.LimitReader(resp.Body, limit+1)
	}
	raw, err := io.ReadAll(answer)
	if err == nil && limit >= 0 && int64(len(raw)) > limit {
		// Not read any further, not decoded: an execution failed with its result too large.
		return Result{Status: "failed", Error: &Error{Type: ResultTooLarge,
			Message: fmt.Sprintf("the runtime's answer is larger than %d bytes; the result limit is %d (LAMBDA_MAX_RESULT_BYTES)",
				limit, call.MaxResultBytes)}}, http.StatusOK, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, 0, ctx.Err()
		}
		return Result{}, 0, fault.Wrap(fault.Unavailable, err, "runtime %s: reading answer", fn)
	}
	var res Result
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &res); err != nil && resp.StatusCode == http.StatusOK {
			return Result{}, 0, fault.Wrap(fault.Unavailable, err, "runtime %s: malformed answer", fn)
		}
	} else if resp.StatusCode != http.StatusOK {
		res.Error = &Error{Type: "Gateway", Message: string(bytes.TrimSpace(raw))}
	}
	return res, resp.StatusCode, nil
}

// send posts body to a replica of fn on the direct route, else through the gateway.
//
// A call is never resent once it may have reached a runtime (the handler could run twice):
// only a refused connection falls back to the gateway. Any other transport failure on the
// direct route (a replica that died mid-call, a pooled connection it closed) fails this call
// as a platform fault — the caller (or Temporal, for async runs) decides on a retry — and
// drops the replica list and the idle connections so the next call starts clean.
func (c *Client) send(ctx context.Context, fn, executionID string, body []byte) (*http.Response, error) {
	if c.direct != nil {
		if base := c.direct.pick(ctx, fn); base != "" {
			resp, err := c.h1.post(ctx, base, executionID, body)
			if errors.Is(err, errNotHTTP) {
				resp, err = c.postHTTP(ctx, base, executionID, body)
			}
			if err == nil {
				return resp, nil
			}
			if ctx.Err() != nil {
				return nil, err // the caller gave up: the replica is not to blame
			}
			c.direct.forget(fn)
			if !dialFailed(err) {
				c.h1.closeIdle()
				c.http.CloseIdleConnections()
				return nil, err
			}
			// Refused: the replica is gone; take the gateway this once.
		}
	}
	req, err := c.newRequest(ctx, "/", executionID, body)
	if err != nil {
		return nil, err
	}
	return c.sdk.InvokeFunction(fn, c.namespace, false, false, req)
}

// postHTTP posts body to a replica URL with net/http (a replica URL the direct route's own
// client does not speak).
func (c *Client) postHTTP(ctx context.Context, base, executionID string, body []byte) (*http.Response, error) {
	u, err := replicaURL(base)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, u.String(), executionID, body)
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

func (c *Client) newRequest(ctx context.Context, u, executionID string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Lambda-Execution-Id", executionID)
	if c.secret != "" {
		req.Header.Set(platformsecret.RuntimeHeader, c.secret)
	}
	return req, nil
}

// statusError maps the host's or the gateway's status code to a fault kind.
func statusError(fn string, status int, res Result) error {
	msg := ""
	if res.Error != nil {
		msg = res.Error.Message
	}
	switch {
	case status == http.StatusOK:
		return nil
	case status == http.StatusUnprocessableEntity:
		return fault.New(fault.Unprocessable, "%s", msg)
	case status == http.StatusRequestEntityTooLarge && res.Error != nil && res.Error.Type == "TooLarge":
		return fault.New(fault.TooLarge, "%s", msg) // the host's own limit (a body, installed dependencies)
	case status == http.StatusServiceUnavailable && res.Error != nil && res.Error.Type == "Overloaded":
		return fault.New(fault.Overloaded, "runtime %s is overloaded", fn)
	case status == http.StatusTooManyRequests && res.Error != nil && res.Error.Type == "TenantShare":
		// Not an overload: the tenant's own calls hold its share of the runtime's workers.
		return fault.New(fault.TenantShare, "this tenant's calls hold its share of runtime %s's workers; retry later", fn)
	case status == http.StatusNotFound:
		return fault.Wrap(fault.Unavailable, errors.New(msg), "runtime %s is not deployed", fn)
	case status == http.StatusBadRequest:
		return fault.Wrap(fault.Internal, errors.New(msg), "runtime %s rejected the request", fn)
	default:
		return fault.Wrap(fault.Unavailable, fmt.Errorf("status %d: %s", status, msg), "runtime %s unavailable", fn)
	}
}

// ResolveDeps asks the runtime function fn to resolve requested dependencies into a lock:
// resolution runs where the language's toolchain and package sources are (the runtime
// host's image), on the same route and with the same invoke secret as an invocation.
// The host's refusals come back as faults of the same kind (400 Invalid, 413 TooLarge,
// 422 Unprocessable with the installer's message).
func (c *Client) ResolveDeps(ctx context.Context, fn string, requested map[string]string) (*deps.Lock, error) {
	if requested == nil {
		requested = map[string]string{}
	}
	body, err := json.Marshal(struct {
		Resolve map[string]string `json:"resolve"`
	}{requested})
	if err != nil {
		return nil, fault.Wrap(fault.Invalid, err, "dependencies cannot be encoded")
	}
	resp, err := c.send(ctx, fn, "resolve", body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fault.Wrap(fault.Unavailable, err, "runtime %s unreachable", fn)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLockAnswer+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fault.Wrap(fault.Unavailable, err, "runtime %s: reading answer", fn)
	}
	var answer struct {
		Lock  *deps.Lock `json:"lock"`
		Error *Error     `json:"error"`
	}
	if len(raw) > 0 && raw[0] == '{' {
		_ = json.Unmarshal(raw, &answer)
	}
	if answer.Error == nil {
		answer.Error = &Error{Type: "Gateway", Message: string(bytes.TrimSpace(raw))}
	}
	msg := answer.Error.Message
	switch resp.StatusCode {
	case http.StatusOK:
		if answer.Lock == nil || len(raw) > maxLockAnswer {
			return nil, fault.New(fault.Unavailable, "runtime %s: malformed resolve answer", fn)
		}
		return answer.Lock, nil
	case http.StatusBadRequest:
		return nil, fault.New(fault.Invalid, "%s", msg)
	case http.StatusRequestEntityTooLarge:
		return nil, fault.New(fault.TooLarge, "%s", msg)
	}
	return nil, statusError(fn, resp.StatusCode, Result{Error: answer.Error})
}

// maxLockAnswer bounds a resolve answer (a lock holds the lock files of every package).
const maxLockAnswer = 64 << 20
