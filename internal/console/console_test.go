package console

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

const testIndex = `<!doctype html><html><head><meta name="csp-nonce" content="__CSP_NONCE__">` +
	`<link rel="stylesheet" href="assets/main-ABCDEFGH.css"><script type="module" src="assets/main-ABCDEFGH.js"></script></head><body></body></html>`

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b strings.Builder
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}

func testHandler(t *testing.T, opts ...Option) http.Handler {
	t.Helper()
	fsys := fstest.MapFS{
		"dist/.gitkeep":                   {Data: nil},
		"dist/index.html":                 {Data: []byte(testIndex)},
		"dist/assets/main-ABCDEFGH.js":    {Data: []byte(`console.log("app")`)},
		"dist/assets/main-ABCDEFGH.js.gz": {Data: gz(t, `console.log("app")`)},
		"dist/assets/main-ABCDEFGH.css":   {Data: []byte(`body{}`)},
		"dist/assets/icon-0A1B2C3D.svg":   {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		"dist/robots.txt":                 {Data: []byte("User-agent: *\nDisallow: /\n")},
	}
	o := options{prefix: "/console/", config: Config{TemporalNamespace: "default"}}
	for _, opt := range opts {
		opt(&o)
	}
	h, err := newHandler(fsys, o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestIndexGetsFreshNonceAndNoCache(t *testing.T) {
	h := testHandler(t)
	nonceRE := regexp.MustCompile(`'nonce-([A-Za-z0-9_-]{20,})'`)
	var seen []string
	for _, target := range []string{"/console/", "/console/index.html", "/", "/console/functions/add"} {
		w := get(t, h, http.MethodGet, target)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", target, w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", target, ct)
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", target, cc)
		}
		if w.Header().Get("ETag") != "" || w.Header().Get("Last-Modified") != "" {
			t.Errorf("GET %s: index.html has validators; a 304 would reuse an old nonce", target)
		}
		csp := w.Header().Get("Content-Security-Policy")
		m := nonceRE.FindStringSubmatch(csp)
		if m == nil {
			t.Fatalf("GET %s: no style nonce in CSP %q", target, csp)
		}
		if !strings.Contains(w.Body.String(), `content="`+m[1]+`"`) || strings.Contains(w.Body.String(), nonceMark) {
			t.Errorf("GET %s: the body does not carry the header's nonce: %s", target, w.Body.String())
		}
		seen = append(seen, m[1])
	}
	if seen[0] == seen[1] {
		t.Error("two responses got the same nonce")
	}
}

func TestStrictCSPOnEveryResponse(t *testing.T) {
	h := testHandler(t)
	for _, target := range []string{"/console/", "/console/assets/main-ABCDEFGH.js", "/console/config.json", "/console/nope.js"} {
		w := get(t, h, http.MethodGet, target)
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", target, csp, want)
			}
		}
		for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
			if strings.Contains(csp, bad) {
				t.Errorf("GET %s: CSP %q allows %q", target, csp, bad)
			}
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", target)
		}
	}
}

func TestAssetsTypesAndCaching(t *testing.T) {
	h := testHandler(t)
	cases := []struct{ path, ctype, cache string }{
		{"/console/assets/main-ABCDEFGH.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/console/assets/main-ABCDEFGH.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/console/assets/icon-0A1B2C3D.svg", "image/svg+xml", "public, max-age=31536000, immutable"},
		{"/console/robots.txt", "text/plain; charset=utf-8", "no-cache"},
		{"/assets/main-ABCDEFGH.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"}, // mounted with StripPrefix
	}
	for _, c := range cases {
		w := get(t, h, http.MethodGet, c.path)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", c.path, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := w.Header().Get("Cache-Control"); got != c.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", c.path, got, c.cache)
		}
	}
	w := get(t, h, http.MethodGet, "/console/robots.txt")
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on robots.txt")
	}
	if w := get(t, h, http.MethodGet, "/console/robots.txt", "If-None-Match", etag); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", w.Code)
	}
}

func TestGzipWhenAccepted(t *testing.T) {
	h := testHandler(t)
	w := get(t, h, http.MethodGet, "/console/assets/main-ABCDEFGH.js", "Accept-Encoding", "br, gzip;q=0.8")
	if w.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
		t.Fatalf("headers %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	if string(body) != `console.log("app")` {
		t.Errorf("body %q", body)
	}
	for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
		w := get(t, h, http.MethodGet, "/console/assets/main-ABCDEFGH.js", "Accept-Encoding", ae)
		if w.Header().Get("Content-Encoding") != "" || w.Body.String() != `console.log("app")` {
			t.Errorf("Accept-Encoding %q: got encoding %q", ae, w.Header().Get("Content-Encoding"))
		}
	}
}

func TestConfigFromOptions(t *testing.T) {
	h := testHandler(t, WithTemporalUI("http://127.0.0.1:8233/", "prod"), WithVersion("v1.2.3"))
	w := get(t, h, http.MethodGet, "/console/config.json")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("%d %v", w.Code, w.Header())
	}
	want := `{"temporal_ui_url":"http://127.0.0.1:8233","temporal_namespace":"prod","version":"v1.2.3"}`
	if w.Body.String() != want {
		t.Errorf("config %s, want %s", w.Body.String(), want)
	}
	if got := get(t, testHandler(t), http.MethodGet, "/console/config.json").Body.String(); got != `{"temporal_ui_url":"","temporal_namespace":"default"}` {
		t.Errorf("default config %s", got)
	}
}

func TestMethodsRedirectAndMissing(t *testing.T) {
	h := testHandler(t)
	if w := get(t, h, http.MethodPost, "/console/"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %q", w.Code, w.Header().Get("Allow"))
	}
	if w := get(t, h, http.MethodHead, "/console/assets/main-ABCDEFGH.js"); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d bytes", w.Code, w.Body.Len())
	}
	if w := get(t, h, http.MethodGet, "/console"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/console/" {
		t.Errorf("GET /console: %d %q", w.Code, w.Header().Get("Location"))
	}
	for _, p := range []string{"/console/assets/main-OTHERHSH.js", "/console/.gitkeep", "/console/assets/main-ABCDEFGH.js.gz"} {
		if w := get(t, h, http.MethodGet, p); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	h2 := testHandler(t, WithPrefix("ui"))
	if w := get(t, h2, http.MethodGet, "/ui/assets/main-ABCDEFGH.css"); w.Code != 200 {
		t.Errorf("prefix /ui/: %d", w.Code)
	}
}

func TestNotBuilt(t *testing.T) {
	h, err := newHandler(fstest.MapFS{"dist/.gitkeep": {}}, options{prefix: "/console/"})
	if err != nil {
		t.Fatal(err)
	}
	w := get(t, h, http.MethodGet, "/console/")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "make build") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
}

// TestEmbedded checks the bundle this binary carries, built or not: a built one must name
// only files the handler serves.
func TestEmbedded(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusServiceUnavailable {
		t.Skip("the console bundle is not built (internal/console/build.sh)")
	}
	refs := regexp.MustCompile(`(?:href|src)="(assets/[^"]+)"`).FindAllStringSubmatch(string(body), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d assets: %s", len(refs), body)
	}
	for _, m := range refs {
		r, err := http.Get(srv.URL + "/console/" + m[1])
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q", m[1], r.StatusCode, r.Header.Get("Cache-Control"))
		}
	}
}
