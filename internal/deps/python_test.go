package deps

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const python = "/usr/bin/python3"

func needPip(t *testing.T) {
	t.Helper()
	err := exec.Command(python, "-I", "-m", "pip", "--version").Run()
	needTool(t, err == nil, python+" -m pip (Debian: python3-pip)")
}

// writeWheel builds a pure-Python wheel (a zip with the package, METADATA, WHEEL, RECORD).
func writeWheel(t *testing.T, dir, name, version string, requires ...string) string {
	t.Helper()
	dist := fmt.Sprintf("%s-%s.dist-info", name, version)
	meta := fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version)
	for _, r := range requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	files := [][2]string{
		{name + "/__init__.py", fmt.Sprintf("VERSION = %q\n", version)},
		{dist + "/METADATA", meta},
		{dist + "/WHEEL", "Wheel-Version: 1.0\nGenerator: lambda-deps-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f[1]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f[0], base64.RawURLEncoding.EncodeToString(sum[:]), len(f[1]))
	}
	record.WriteString(dist + "/RECORD,,\n")
	files = append(files, [2]string{dist + "/RECORD", record.String()})
	p := filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", name, version))
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	z := zip.NewWriter(out)
	for _, f := range files {
		w, err := z.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f[1]))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return p
}

// writeSdist puts a source distribution (and no wheel) of name into dir: installing it
// would run its setup.py, which writes marker.
func writeSdist(t *testing.T, dir, name, version, marker string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s.tar.gz", name, version)))
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	setup := fmt.Sprintf("open(%q, 'w').write('ran')\nfrom setuptools import setup\nsetup(name=%q, version=%q)\n", marker, name, version)
	for name, body := range map[string]string{
		fmt.Sprintf("%s-%s/setup.py", name, version): setup,
		fmt.Sprintf("%s-%s/PKG-INFO", name, version): fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, version),
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	f.Close()
}

func pythonEngine(t *testing.T, tweak func(*Config)) (*Engine, *Spec, string) {
	needPip(t)
	wheelhouse := t.TempDir()
	writeWheel(t, wheelhouse, "lambdatest_a", "1.0.0", "lambdatest-b>=2")
	writeWheel(t, wheelhouse, "lambdatest_b", "2.1.0")
	writeWheel(t, wheelhouse, "lambdatest_b", "1.0.0")
	return newEngine(t, map[string]string{"LAMBDA_PIP_WHEELHOUSE": wheelhouse}, tweak), defaultSpec(t, "python"), wheelhouse
}

func TestPythonWheelResolveInstallImport(t *testing.T) {
	e, s, _ := pythonEngine(t, nil)
	ctx := context.Background()
	start := time.Now()
	lock, err := e.Resolve(ctx, s, map[string]string{"lambdatest-a": ">=1"})
	if err != nil {
		t.Fatal(err)
	}
	resolveT := time.Since(start)
	req := string(lock.Files["requirements.txt"])
	want := regexp.MustCompile(`^lambdatest-a==1\.0\.0 --hash=sha256:[0-9a-f]{64}\nlambdatest-b==2\.1\.0 --hash=sha256:[0-9a-f]{64}\n$`)
	if !want.MatchString(req) || lock.Packages != 2 {
		t.Fatalf("lock (%d packages):\n%s", lock.Packages, req)
	}
	start = time.Now()
	in, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	installT := time.Since(start)
	in.Release()
	out := run(t, t.TempDir(), []string{"PATH=/usr/bin:/bin", "PYTHONPATH=" + in.Env["PYTHONPATH"]}, python, "-c",
		"import lambdatest_a, lambdatest_b; print(lambdatest_a.VERSION, lambdatest_b.VERSION)")
	if strings.TrimSpace(out) != "1.0.0 2.1.0" {
		t.Fatalf("import: %q", out)
	}
	start = time.Now()
	again, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	hitT := time.Since(start)
	again.Release()
	if !again.Cached || again.Dir != in.Dir || e.InstallRuns() != 1 {
		t.Fatalf("second install: %+v, %d runs", again, e.InstallRuns())
	}
	t.Logf("TIMING python: resolve %.1f ms, install %.1f ms, cached install %.3f ms", ms(resolveT), ms(installT), ms(hitT))
}

func TestPythonRefusals(t *testing.T) {
	e, s, wheelhouse := pythonEngine(t, nil)
	marker := filepath.Join(t.TempDir(), "setup-py-ran")
	writeSdist(t, wheelhouse, "sdistonly", "1.0", marker)
	ctx := context.Background()
	var ie *InstallerError
	_, err := e.Resolve(ctx, s, map[string]string{"sdistonly": "*"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "from versions: none") || len(ie.Hints) != 1 ||
		!strings.Contains(ie.Hints[0], "no wheel of sdistonly") {
		t.Fatalf("a wheel-less requirement: %v", err)
	}
	if exists(marker) {
		t.Fatal("setup.py ran")
	}
	t.Logf("wheel-less: %v", err)
	_, err = e.Resolve(ctx, s, map[string]string{"lambdatest-a": "9.0"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "lambdatest-a==9.0 (from versions: 1.0.0)") {
		t.Fatalf("an unknown version: %v", err)
	}
	t.Logf("unknown version: %v", err)
	_, err = e.Resolve(ctx, s, map[string]string{"no-such-package": "1"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "No matching distribution found for no-such-package") {
		t.Fatalf("an unknown package: %v", err)
	}
}

// A wheel replaced in the wheelhouse after resolve no longer matches the lock's hash.
func TestPythonHashMismatchRefused(t *testing.T) {
	e, s, wheelhouse := pythonEngine(t, nil)
	lock, err := e.Resolve(context.Background(), s, map[string]string{"lambdatest-b": "2.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	writeWheel(t, wheelhouse, "lambdatest_b", "2.1.0", "evil>=0") // same name, other bytes
	_, err = e.Install(context.Background(), s, lock)
	var ie *InstallerError
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "DO NOT MATCH THE HASHES") {
		t.Fatalf("%v", err)
	}
}

// Concurrent installs of one new lock (the api registering two functions at once) run pip
// once; every caller gets the directory.
func TestPythonConcurrentInstallsRunPipOnce(t *testing.T) {
	rec := &recorder{}
	e, s, _ := pythonEngine(t, func(c *Config) { c.Exec = rec })
	lock, err := e.Resolve(context.Background(), s, map[string]string{"lambdatest-a": "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	dirs := make([]string, 6)
	for i := range errs {
		wg.Go(func() {
			in, err := e.Install(context.Background(), s, lock)
			if err == nil {
				dirs[i] = in.Dir
				in.Release()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || dirs[i] != dirs[0] {
			t.Fatal(err, dirs)
		}
	}
	if n := rec.count("install"); n != len(s.Install) || e.InstallRuns() != 1 {
		t.Fatalf("%d install commands ran (one install has %d), %d installs", n, len(s.Install), e.InstallRuns())
	}
}
