package deps

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needNode(t *testing.T) {
	t.Helper()
	_, errNpm := lookPath("npm", "/usr/local/bin:/usr/bin:/bin")
	_, errNode := lookPath("node", "/usr/local/bin:/usr/bin:/bin")
	needTool(t, errNpm == nil && errNode == nil, "node and npm in /usr/local/bin:/usr/bin:/bin (Debian: nodejs, npm)")
}

// The real registry (LAMBDA_NPM_REGISTRY unset: registry.npmjs.org): is-number resolves,
// installs and is require()d from the install directory through NODE_PATH.
func TestNodeRegistryResolveInstallRequire(t *testing.T) {
	needNode(t)
	e, s := newEngine(t, nil, nil), defaultSpec(t, "node")
	ctx := context.Background()
	start := time.Now()
	lock, err := e.Resolve(ctx, s, map[string]string{"is-number": "^7.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	resolveT := time.Since(start)
	var pl struct {
		Packages map[string]struct{ Version, Resolved, Integrity string }
	}
	if err := json.Unmarshal(lock.Files["package-lock.json"], &pl); err != nil {
		t.Fatal(err)
	}
	if p := pl.Packages["node_modules/is-number"]; p.Version != "7.0.0" || !strings.HasPrefix(p.Integrity, "sha512-") || lock.Packages != 1 {
		t.Fatalf("lock: %+v (%d packages)", pl.Packages, lock.Packages)
	}
	start = time.Now()
	in, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	installT := time.Since(start)
	in.Release()
	out := run(t, t.TempDir(), []string{"PATH=/usr/bin:/bin", "NODE_PATH=" + in.Env["NODE_PATH"]}, "node", "-e",
		`const n = require("is-number"); console.log(n(5), n("x"), require("is-number/package.json").version)`)
	if strings.TrimSpace(out) != "true false 7.0.0" {
		t.Fatalf("require: %q", out)
	}
	start = time.Now()
	again, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	hitT := time.Since(start)
	again.Release()
	if !again.Cached || e.InstallRuns() != 1 {
		t.Fatal("the second install was not a cache hit")
	}
	// Another lock of the same packages re-resolved later is the same lock.
	lock2, err := e.Resolve(ctx, s, map[string]string{"is-number": "^7.0.0"})
	if err != nil || lock2.Hash != lock.Hash {
		t.Fatalf("re-resolve: %v, hash %s vs %s", err, lock2.Hash, lock.Hash)
	}
	t.Logf("TIMING node: resolve %.1f ms, install %.1f ms, cached install %.3f ms", ms(resolveT), ms(installT), ms(hitT))
}

func TestNodeUnknownPackageAndVersion(t *testing.T) {
	needNode(t)
	e, s := newEngine(t, nil, nil), defaultSpec(t, "node")
	var ie *InstallerError
	_, err := e.Resolve(context.Background(), s, map[string]string{"lambda-microservice-no-such-package-7f3e": "1.0.0"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "E404") || len(ie.Hints) != 1 {
		t.Fatalf("unknown package: %v", err)
	}
	t.Logf("unknown package: %v", err)
	_, err = e.Resolve(context.Background(), s, map[string]string{"is-number": "99.0.0"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "No matching version found for is-number@99.0.0") {
		t.Fatalf("unknown version: %v", err)
	}
	t.Logf("unknown version: %v", err)
}

// markerRegistry serves one package, lambda-marker-pkg 1.0.0, whose preinstall, install and
// postinstall scripts would each create a file in markDir: a local registry shim, so
// nothing is published.
func markerRegistry(t *testing.T, markDir string) *httptest.Server {
	t.Helper()
	pkgJSON, _ := json.Marshal(map[string]any{
		"name": "lambda-marker-pkg", "version": "1.0.0", "main": "index.js",
		"scripts": map[string]string{
			"preinstall":  "touch " + filepath.Join(markDir, "preinstall"),
			"install":     "touch " + filepath.Join(markDir, "install"),
			"postinstall": "node -e \"require('fs').writeFileSync('" + filepath.Join(markDir, "postinstall") + "', 'ran')\"",
		},
	})
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"package/package.json": string(pkgJSON),
		"package/index.js":     "module.exports = () => 'marker-pkg loaded';\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	sum := sha512.Sum512(tgz.Bytes())
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/lambda-marker-pkg":
			var version map[string]any
			json.Unmarshal(pkgJSON, &version)
			version["dist"] = map[string]any{"tarball": srv.URL + "/lambda-marker-pkg/-/lambda-marker-pkg-1.0.0.tgz", "integrity": integrity}
			version["hasInstallScript"] = true
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"name": "lambda-marker-pkg", "dist-tags": map[string]string{"latest": "1.0.0"},
				"versions": map[string]any{"1.0.0": version},
			})
		case "/lambda-marker-pkg/-/lambda-marker-pkg-1.0.0.tgz":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(tgz.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A package with install scripts is installed without running them; the control run of
// plain `npm ci` on the same lock shows the scripts would have created the markers.
func TestNodeInstallScriptsNeverRun(t *testing.T) {
	needNode(t)
	markDir := t.TempDir()
	srv := markerRegistry(t, markDir)
	e := newEngine(t, map[string]string{"LAMBDA_NPM_REGISTRY": srv.URL + "/"}, nil)
	s := defaultSpec(t, "node")
	lock, err := e.Resolve(context.Background(), s, map[string]string{"lambda-marker-pkg": "^1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := e.Install(context.Background(), s, lock)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Release()
	out := run(t, t.TempDir(), []string{"PATH=/usr/bin:/bin", "NODE_PATH=" + in.Env["NODE_PATH"]}, "node", "-e",
		`console.log(require("lambda-marker-pkg")())`)
	if strings.TrimSpace(out) != "marker-pkg loaded" {
		t.Fatalf("require: %q", out)
	}
	if ents, _ := os.ReadDir(markDir); len(ents) != 0 {
		t.Fatalf("install scripts ran during resolve or install: %v", ents)
	}

	// Control: the same lock installed by plain `npm ci` runs the scripts.
	ctl := t.TempDir()
	for name, b := range lock.Files {
		mustWrite(t, filepath.Join(ctl, name), b)
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = ctl
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + ctl, "npm_config_cache=" + filepath.Join(ctl, ".npm"),
		"npm_config_userconfig=/dev/null", "npm_config_registry=" + srv.URL + "/"}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("control npm ci: %v\n%s", err, b)
	}
	for _, m := range []string{"preinstall", "install", "postinstall"} {
		if !exists(filepath.Join(markDir, m)) {
			t.Fatalf("control: the %s script did not run, so the test proves nothing", m)
		}
	}
}
