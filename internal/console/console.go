// Package console serves the web console: a single-page app built by esbuild from web/
// into dist/ and embedded into the binary, so the api serves it with no separate server.
//
// The api mounts Handler at /console/ (and redirects / there). The app talks only to
// the same origin: the /v1 API with the user's API key as a bearer token, and
// /console/config.json, which this handler serves from its options.
package console

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// dist holds the built app; `all:` keeps the committed dist/.gitkeep embeddable so a fresh
// clone compiles before the bundle is built.
//
//go:embed all:dist
var dist embed.FS

// nonceMark is what web/build.mjs writes into index.html where each response's
// Content-Security-Policy nonce goes (CodeMirror mounts its styles in <style> elements
// that carry it; no script is ever inline).
const nonceMark = "__CSP_NONCE__"

// hashed matches the names esbuild gives bundle outputs ([name]-[hash].ext): their content
// never changes under a name, so browsers may keep them for a year.
var hashed = regexp.MustCompile(`^assets/[A-Za-z0-9_.-]+-[A-Z0-9]{8,}\.[a-z0-9]+$`)

// Config is what GET <prefix>config.json tells the app.
type Config struct {
	// TemporalUIURL is the Temporal Web UI's base URL (e.g. http://127.0.0.1:8233); the app
	// links an async execution to <TemporalUIURL>/namespaces/<ns>/workflows/exec-<id>.
	// Empty: no link is shown.
	TemporalUIURL string `json:"temporal_ui_url"`
	// TemporalNamespace is the namespace in those links ("default" when empty).
	TemporalNamespace string `json:"temporal_namespace"`
	// Version is shown in the app's footer (e.g. the build's version); optional.
	Version string `json:"version,omitempty"`
}

// Option configures Handler.
type Option func(*options)

type options struct {
	prefix string
	config Config
}

// WithTemporalUI sets the Temporal Web UI's base URL and namespace for workflow links.
func WithTemporalUI(baseURL, namespace string) Option {
	return func(o *options) {
		o.config.TemporalUIURL = strings.TrimRight(baseURL, "/")
		if namespace != "" {
			o.config.TemporalNamespace = namespace
		}
	}
}

// WithVersion sets the version string the app shows.
func WithVersion(v string) Option { return func(o *options) { o.config.Version = v } }

// WithPrefix sets the path the handler is mounted at (default "/console/"). Requests may
// arrive with the prefix (http.ServeMux, chi's Handle or Mount) or without it
// (http.StripPrefix); both are served.
func WithPrefix(p string) Option {
	return func(o *options) { o.prefix = "/" + strings.Trim(p, "/") + "/" }
}

type file struct {
	body, gzip  []byte
	contentType string
	etag        string
	cache       string
}

type handler struct {
	prefix string
	config []byte
	index  []byte // nil when the bundle was not built
	files  map[string]file
}

// Handler returns the console's handler: GET and HEAD of the app's files, the config and
// index.html for the app's root. Every response carries a strict Content-Security-Policy.
func Handler(opts ...Option) http.Handler {
	o := options{prefix: "/console/", config: Config{TemporalNamespace: "default"}}
	for _, opt := range opts {
		opt(&o)
	}
	h, err := newHandler(dist, o)
	if err != nil {
		panic("console: " + err.Error()) // the embedded files are fixed at build time
	}
	return h
}

func newHandler(fsys fs.FS, o options) (*handler, error) {
	h := &handler{prefix: o.prefix, files: map[string]file{}}
	var err error
	if h.config, err = json.Marshal(o.config); err != nil {
		return nil, err
	}
	root, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(p), ".") || strings.HasSuffix(p, ".gz") {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		if p == "index.html" {
			h.index = body
			return nil
		}
		f := file{body: body, contentType: contentType(p), cache: "no-cache"}
		if gz, err := fs.ReadFile(root, p+".gz"); err == nil {
			f.gzip = gz
		}
		sum := sha256.Sum256(body)
		f.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		if hashed.MatchString(p) {
			f.cache = "public, max-age=31536000, immutable"
		}
		h.files[p] = f
		return nil
	})
	return h, err
}

// contentType names the types the app uses rather than trusting the system's mime tables.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".woff2":
		return "font/woff2"
	case ".png":
		return "image/png"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// csp allows only this origin's scripts, styles, images and API; styles may also come
// from <style> elements carrying the response's nonce (CodeMirror's themes), and images
// from data: URLs (CodeMirror's themes draw lint underlines and tab markers with them).
func csp(nonce string) string {
	style := "style-src 'self'"
	if nonce != "" {
		style += " 'nonce-" + nonce + "'"
	}
	return "default-src 'none'; script-src 'self'; " + style + "; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Content-Security-Policy", csp(""))
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p+"/" == h.prefix {
		http.Redirect(w, r, h.prefix, http.StatusMovedPermanently)
		return
	}
	p = strings.TrimPrefix(p, h.prefix)
	p = strings.TrimPrefix(p, "/")
	switch {
	case p == "" || p == "index.html":
		h.serveIndex(w, r)
	case p == "config.json":
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		_, _ = w.Write(h.config)
	default:
		f, ok := h.files[p]
		if !ok {
			if !strings.Contains(path.Base(p), ".") {
				h.serveIndex(w, r) // an app route reloaded with history-style paths
				return
			}
			http.NotFound(w, r)
			return
		}
		h.serveFile(w, r, p, f)
	}
}

func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, name string, f file) {
	hd := w.Header()
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", f.cache)
	hd.Set("ETag", f.etag)
	body := f.body
	if f.gzip != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			hd.Set("Content-Encoding", "gzip")
			hd.Set("ETag", f.etag[:len(f.etag)-1]+`-gz"`)
			body = f.gzip
		}
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding value lists gzip with a non-zero q.
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// serveIndex writes index.html with a fresh nonce. It carries no validators: a 304 would
// keep an old nonce that the new policy no longer allows.
func (h *handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	if h.index == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(notBuilt))
		return
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	nonce := base64.RawURLEncoding.EncodeToString(b[:])
	hd.Set("Content-Security-Policy", csp(nonce))
	_, _ = w.Write(bytes.ReplaceAll(h.index, []byte(nonceMark), []byte(nonce)))
}

const notBuilt = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lambda console: not built</title></head>
<body><h1>The console was not built</h1><p>This binary was compiled without the console's bundle.
Build it with <code>make build</code> (or <code>internal/console/build.sh</code>), then rebuild the binary.</p></body></html>
`
