package deps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cargoRegistry = "/usr/share/cargo/registry"

func needCargo(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("cargo")
	needTool(t, err == nil, "cargo")
	for _, c := range []string{"itoa", "regex", "serde_json"} {
		m, _ := filepath.Glob(filepath.Join(cargoRegistry, c+"-*"))
		needTool(t, len(m) > 0, "crate "+c+" in "+cargoRegistry+" (Debian: librust-"+strings.ReplaceAll(c, "_", "-")+"-dev)")
	}
}

// itoa and regex from Debian's crate registry: locked, vendored, and a tiny crate using
// them (and serde_json, which the lock always carries for the runtime) builds offline
// from the vendored sources only.
func TestRustRegistryResolveVendorBuild(t *testing.T) {
	needCargo(t)
	e, s := newEngine(t, nil, nil), defaultSpec(t, "rust")
	ctx := context.Background()
	start := time.Now()
	lock, err := e.Resolve(ctx, s, map[string]string{"itoa": "1", "regex": "1"})
	if err != nil {
		t.Fatal(err)
	}
	resolveT := time.Since(start)
	cl := string(lock.Files["Cargo.lock"])
	for _, p := range []string{`name = "itoa"`, `name = "regex"`, `name = "serde_json"`, `name = "memchr"`} {
		if !strings.Contains(cl, p) {
			t.Fatalf("Cargo.lock lacks %s:\n%s", p, cl)
		}
	}
	start = time.Now()
	in, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	installT := time.Since(start)
	defer in.Release()
	if !exists(filepath.Join(in.Dir, "vendor", "regex-"+versionOf(t, cl, "regex"))) {
		t.Fatalf("no vendored regex in %s", in.Dir)
	}
	start = time.Now()
	again, err := e.Install(ctx, s, lock)
	if err != nil {
		t.Fatal(err)
	}
	hitT := time.Since(start)
	again.Release()

	// The build the runtime will do: its own package with the install's manifest and lock,
	// sources from the vendored copy only (the Debian registry is not named).
	app := t.TempDir()
	for _, f := range []string{"Cargo.toml", "Cargo.lock"} {
		b, err := os.ReadFile(filepath.Join(in.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(app, f), b)
	}
	mustWrite(t, filepath.Join(app, "src", "main.rs"), []byte(`
fn main() {
    let mut buf = itoa::Buffer::new();
    let re = regex::Regex::new(r"^\d{3}-\d{4}$").unwrap();
    let v = serde_json::json!({"n": buf.format(12345), "m": re.is_match("555-1234")});
    println!("{}", v);
}
`))
	env := append(os.Environ(), "CARGO_HOME="+filepath.Join(app, ".cargo-home"), "CARGO_TARGET_DIR="+filepath.Join(app, "target"), "CARGO_TERM_COLOR=never")
	start = time.Now()
	run(t, app, env, "cargo", "build", "--offline", "--locked", "--quiet", "--config", in.BuildEnv["LAMBDA_CARGO_CONFIG"])
	buildT := time.Since(start)
	out := run(t, app, nil, filepath.Join(app, "target", "debug", "lambda-deps"))
	if strings.TrimSpace(out) != `{"m":true,"n":"12345"}` {
		t.Fatalf("output %q", out)
	}
	t.Logf("TIMING rust: resolve %.1f ms, install (vendor) %.1f ms, cached install %.3f ms, debug build of the test crate %.0f ms",
		ms(resolveT), ms(installT), ms(hitT), ms(buildT))
}

func versionOf(t *testing.T, cargoLock, name string) string {
	t.Helper()
	i := strings.Index(cargoLock, "name = \""+name+"\"\nversion = \"")
	if i < 0 {
		t.Fatalf("%s not in the lock", name)
	}
	rest := cargoLock[i+len("name = \""+name+"\"\nversion = \""):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestRustUnknownCrateAndVersion(t *testing.T) {
	needCargo(t)
	e, s := newEngine(t, nil, nil), defaultSpec(t, "rust")
	var ie *InstallerError
	_, err := e.Resolve(context.Background(), s, map[string]string{"no_such_crate_zz": "1"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "no matching package named `no_such_crate_zz` found") ||
		len(ie.Hints) != 1 || !strings.Contains(ie.Hints[0], "librust-<name>-dev") {
		t.Fatalf("unknown crate: %v", err)
	}
	t.Logf("unknown crate: %v", err)
	_, err = e.Resolve(context.Background(), s, map[string]string{"itoa": "99"})
	if !errors.As(err, &ie) || !strings.Contains(ie.Output, "failed to select a version for the requirement `itoa = \"^99\"`") {
		t.Fatalf("unknown version: %v", err)
	}
	t.Logf("unknown version: %v", err)
}
