package deps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// toyYAML is a fourth language made of /bin/sh lines: the engine runs it with no Go
// change, which is how the cache, locking, limits and errors are tested without a real
// package manager.
const toyYAML = `
runtimes:
  - title: perl
    command: [ignored]
  - title: toy
    function: runtime-toy
    dependencies:
      name: '^[a-z]+$'
      version: '^[0-9.]+$'
      vars:
        size: {env: TOY_SIZE, default: "0"}
        sleep: {env: TOY_SLEEP, default: "0"}
        repo: {env: TOY_REPO, default: /nonexistent/toy-repo, path: true}
      env:
        TOY_SLEEP: "{{.Var.sleep}}"
      files:
        deps.in: "{{range .Deps}}{{.Name}} {{.Version}}\n{{end}}"
      resolve:
        - args: [/bin/sh, -c, 'if grep -q "^missing " deps.in; then echo "toy: no package missing" >&2; exit 3; fi; sed "s/ /==/" deps.in > deps.lock']
          network: '{{if .Var.repo}}none{{else}}registry{{end}}'
      lock: [deps.lock]
      count: '(?m)^[a-z]'
      install:
        - args: [/bin/sh, -c, 'mkdir lib && cp deps.lock lib/ && head -c {{.Var.size}} /dev/zero > lib/blob && sleep $TOY_SLEEP', "{{.Final}}", ""]
          network: none
      runtime_env:
        TOY_PATH: "{{.Dir}}/lib"
      hints:
        - match: 'no package (\w+)'
          message: "package $1 is unknown"
`

func toySpec(t *testing.T) *Spec {
	t.Helper()
	specs, err := ParseSpecs([]byte(toyYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 1 || specs["toy"] == nil {
		t.Fatalf("want only the toy entry, got %v", specs)
	}
	return specs["toy"]
}

func TestRegistrySpecs(t *testing.T) {
	specs, err := registrySpecs()
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for k := range specs {
		titles = append(titles, k)
	}
	slices.Sort(titles)
	if strings.Join(titles, ",") != "node,python,rust" {
		t.Fatalf("titles %v", titles)
	}
}

func TestParseSpecsStrict(t *testing.T) {
	bad := strings.Replace(toyYAML, "count:", "cuont:", 1)
	if _, err := ParseSpecs([]byte(bad)); err == nil || !strings.Contains(err.Error(), "cuont") {
		t.Fatalf("a misspelt field: %v", err)
	}
	bad = strings.Replace(toyYAML, "lock: [deps.lock]", "lock: [../deps.lock]", 1)
	if _, err := ParseSpecs([]byte(bad)); err == nil {
		t.Fatal("a lock file outside the project was accepted")
	}
	bad = strings.Replace(toyYAML, "{{.Var.sleep}}", "{{.Var.sleep", 1)
	if _, err := ParseSpecs([]byte(bad)); err == nil {
		t.Fatal("a broken template was accepted")
	}
}

func TestValidateRefusesNonRegistrySpecs(t *testing.T) {
	cases := map[string]map[string]string{
		"node": {
			"a": "file:../../etc", "b": "git+ssh://git@github.com/x/y.git", "c": "https://evil/x.tgz",
			"d": "user/repo", "e": "npm:other@1", "../x": "1.0.0",
		},
		"python": {
			"a": "1.0\n--index-url http://evil", "b": "@ https://evil/b.whl", "-e": "1", "c": "; os_name=='nt'",
			"d d": "1",
		},
		"rust": {
			"a": "1\"\n[patch]", "b": "{ git = \"x\" }", "c d": "1",
		},
	}
	for title, deps := range cases {
		s := defaultSpec(t, title)
		for name, version := range deps {
			_, err := s.Validate(map[string]string{name: version})
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Errorf("%s %q: %q accepted (%v)", title, name, version, err)
			} else if inv.HTTPStatus() != 400 {
				t.Errorf("status %d", inv.HTTPStatus())
			}
		}
	}
	good := map[string]map[string]string{
		"node":   {"is-number": "^7.0.0", "@types/node": "~20.1", "lodash": "latest", "x": ">=1 <2 || 3.x"},
		"python": {"requests": ">=2.0,<3", "Django": "4.2", "numpy": "*", "a_b.c": "~=1.4", "x[extra]": "==1.0"},
		"rust":   {"regex": "1", "itoa": "=1.0.1", "serde_json": ">=1.0, <2"},
	}
	for title, deps := range good {
		if _, err := defaultSpec(t, title).Validate(deps); err != nil {
			t.Errorf("%s: %v", title, err)
		}
	}
}

func TestHashFiles(t *testing.T) {
	a := HashFiles("node", map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	if a != HashFiles("node", map[string][]byte{"b": []byte("2"), "a": []byte("1")}) {
		t.Fatal("the hash depends on map order")
	}
	for _, other := range []string{
		HashFiles("python", map[string][]byte{"a": []byte("1"), "b": []byte("2")}),
		HashFiles("node", map[string][]byte{"a": []byte("12"), "b": []byte("")}),
		HashFiles("node", map[string][]byte{"a": []byte("1"), "b": []byte("3")}),
	} {
		if other == a {
			t.Fatal("different locks share a hash")
		}
	}
}

func TestToyResolveInstall(t *testing.T) {
	rec := &recorder{}
	t.Setenv("LAMBDA_SECRET_FOR_TEST", "s3cret")
	e := newEngine(t, map[string]string{"TOY_REPO": "/srv/toy"}, func(c *Config) { c.Exec = rec })
	s := toySpec(t)
	if l, err := e.Resolve(context.Background(), s, nil); l != nil || err != nil {
		t.Fatalf("no dependencies: %v %v", l, err)
	}
	lock, err := e.Resolve(context.Background(), s, map[string]string{"zed": "2", "abc": "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(lock.Files["deps.lock"]); got != "abc==1.0\nzed==2\n" || lock.Packages != 2 {
		t.Fatalf("lock %q, %d packages", got, lock.Packages)
	}
	in, err := e.Install(context.Background(), s, lock)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Release()
	if in.Cached || in.Dir != filepath.Join(e.Config().Dir, "installs", lock.Hash) || in.Env["TOY_PATH"] != in.Dir+"/lib" {
		t.Fatalf("%+v", in)
	}
	if b, _ := os.ReadFile(filepath.Join(in.Dir, "lib", "deps.lock")); string(b) != "abc==1.0\nzed==2\n" {
		t.Fatalf("installed %q", b)
	}
	// The seam: every command went through Exec with a minimal environment.
	if len(rec.cmds) != 2 {
		t.Fatalf("%d commands", len(rec.cmds))
	}
	for _, c := range rec.cmds {
		env := strings.Join(c.Env, "\n")
		if strings.Contains(env, "s3cret") || !strings.Contains(env, "PATH=/usr/local/bin:/usr/bin:/bin") {
			t.Fatalf("environment leaks or lacks PATH:\n%s", env)
		}
		home := envValue(c.Env, "HOME")
		if !slices.Contains(c.Writable, home) || !slices.Contains(c.Writable, c.Dir) || !slices.Equal(c.ReadOnly, []string{"/srv/toy"}) {
			t.Fatalf("%+v", c)
		}
		if c.Network != NetworkNone || c.Timeout <= 0 {
			t.Fatalf("%+v", c)
		}
	}
	if args := rec.cmds[1].Args; len(args) != 4 || args[3] != in.Dir {
		t.Fatalf("install args %q: an empty argument is left out, .Final is the final directory", args)
	}
	// A tampered lock is refused.
	bad := *lock
	bad.Files = map[string][]byte{"deps.lock": []byte("evil==1\n")}
	if _, err := e.Install(context.Background(), s, &bad); err == nil {
		t.Fatal("a lock whose files do not match its hash was installed")
	}
}

func TestToyInstallerErrorAndLimits(t *testing.T) {
	s := toySpec(t)
	e := newEngine(t, nil, func(c *Config) { c.MaxDeps = 2; c.MaxPackages = 1 })
	_, err := e.Resolve(context.Background(), s, map[string]string{"missing": "1"})
	var ie *InstallerError
	if !errors.As(err, &ie) || ie.ExitCode != 3 || ie.Output != "toy: no package missing" ||
		!slices.Equal(ie.Hints, []string{"package missing is unknown"}) || ie.HTTPStatus() != 422 {
		t.Fatalf("%#v", err)
	}
	t.Logf("installer error: %v", err)
	var le *LimitError
	if _, err = e.Resolve(context.Background(), s, map[string]string{"a": "1", "b": "1", "c": "1"}); !errors.As(err, &le) || le.Limit != LimitDependencies {
		t.Fatalf("%v", err)
	}
	t.Logf("%v", err)
	if _, err = e.Resolve(context.Background(), s, map[string]string{"a": "1", "b": "1"}); !errors.As(err, &le) || le.Limit != LimitPackages {
		t.Fatalf("%v", err)
	}
	t.Logf("%v", err)
}

func TestToyInstallSizeAndTimeLimits(t *testing.T) {
	s := toySpec(t)
	vars := map[string]string{"TOY_SIZE": "3000000"}
	e := newEngine(t, vars, func(c *Config) { c.MaxInstallBytes = 2 << 20 })
	lock, err := e.Resolve(context.Background(), s, map[string]string{"big": "1"})
	if err != nil {
		t.Fatal(err)
	}
	var le *LimitError
	if _, err = e.Install(context.Background(), s, lock); !errors.As(err, &le) || le.Limit != LimitSize || le.HTTPStatus() != 413 {
		t.Fatalf("%v", err)
	}
	t.Logf("%v", err)
	// The size is watched while the installer runs: a slow, growing install stops early.
	vars["TOY_SLEEP"] = "30"
	start := time.Now()
	if _, err := e.Install(context.Background(), s, lock); !errors.As(err, &le) || le.Limit != LimitSize {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the oversized install ran %v", d)
	}
	vars["TOY_SIZE"] = "10"
	e2 := newEngine(t, vars, func(c *Config) { c.InstallTimeout = 300 * time.Millisecond })
	start = time.Now()
	if _, err = e2.Install(context.Background(), s, lock); !errors.As(err, &le) || le.Limit != LimitInstallTime {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the timed-out install ran %v", d)
	}
	t.Logf("%v", err)
	if ents, _ := os.ReadDir(filepath.Join(e2.Config().Dir, "installs")); len(ents) != 0 {
		t.Fatalf("a failed install left %v", ents)
	}
}

// Concurrent installs of the same new lock, from goroutines and from a second engine on
// the same cache root (another process), all succeed and run the installer once.
func TestToyConcurrentInstallOnce(t *testing.T) {
	s := toySpec(t)
	rec := &recorder{}
	vars := map[string]string{"TOY_SLEEP": "0.3"}
	e1 := newEngine(t, vars, func(c *Config) { c.Exec = rec })
	e2, err := New(Config{Dir: e1.Config().Dir, Getenv: e1.Config().Getenv, Exec: rec})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := e1.Resolve(context.Background(), s, map[string]string{"shared": "1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	res := make([]*Installed, 8)
	errs := make([]error, 8)
	for i := range res {
		wg.Go(func() {
			e := e1
			if i%2 == 1 {
				e = e2
			}
			res[i], errs[i] = e.Install(context.Background(), s, lock)
		})
	}
	wg.Wait()
	fresh := 0
	for i := range res {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		defer res[i].Release()
		if res[i].Dir != res[0].Dir {
			t.Fatal("different directories")
		}
		if !res[i].Cached {
			fresh++
		}
	}
	if n := rec.count("install"); n != 1 || fresh != 1 || e1.InstallRuns()+e2.InstallRuns() != 1 {
		t.Fatalf("installer ran %d times, %d fresh results", n, fresh)
	}
}

func TestToyEvictionLRU(t *testing.T) {
	s := toySpec(t)
	e := newEngine(t, map[string]string{"TOY_SIZE": "1000000"}, func(c *Config) {
		c.CacheBytes = 3 << 20
		c.MaxInstallBytes = 2 << 20
	})
	e.recentUse = 0
	install := func(name string) *Installed {
		t.Helper()
		lock, err := e.Resolve(context.Background(), s, map[string]string{name: "1"})
		if err != nil {
			t.Fatal(err)
		}
		in, err := e.Install(context.Background(), s, lock)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // distinct last-use times
		return in
	}
	a := install("a")
	a.Release()
	b := install("b") // held throughout
	defer b.Release()
	c := install("c")
	c.Release()
	if !exists(a.Dir) || !exists(c.Dir) {
		t.Fatal("evicted within the budget")
	}
	d := install("d") // 4 MB > 3 MB: a, the least recently used, goes
	if exists(a.Dir) || !exists(b.Dir) || !exists(c.Dir) {
		t.Fatalf("after d: a %v b %v c %v", exists(a.Dir), exists(b.Dir), exists(c.Dir))
	}
	x := install("x") // b is older but held: c goes
	defer x.Release()
	if !exists(b.Dir) || exists(c.Dir) || !exists(d.Dir) || !exists(x.Dir) {
		t.Fatalf("after x: b %v c %v d %v x %v", exists(b.Dir), exists(c.Dir), exists(d.Dir), exists(x.Dir))
	}
	// An evicted lock reinstalls (and d, released, goes for it).
	d.Release()
	runs := e.InstallRuns()
	a2 := install("a")
	defer a2.Release()
	if a2.Cached || e.InstallRuns() != runs+1 || exists(d.Dir) {
		t.Fatal("the evicted lock did not reinstall, or d stayed")
	}
	// A held entry used again is a cache hit.
	b2 := install("b")
	b2.Release()
	if !b2.Cached || e.InstallRuns() != runs+1 {
		t.Fatal("no cache hit")
	}
	var total int64
	for _, c := range e.Entries() {
		total += c.Size
	}
	if total > 3<<20 {
		t.Fatalf("cache holds %d bytes", total)
	}
}

func TestCheck(t *testing.T) {
	e := newEngine(t, nil, nil)
	if err := e.Check(toySpec(t)); err != nil {
		t.Fatal(err)
	}
	bad, err := ParseSpecs([]byte(strings.Replace(toyYAML, "args: [/bin/sh, -c, 'if", "args: [no-such-installer-zz, -c, 'if", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Check(bad["toy"]); err == nil || !strings.Contains(err.Error(), "no-such-installer-zz") {
		t.Fatalf("%v", err)
	}
}

// The cost of a cache hit: the path every later registration and worker start takes.
func BenchmarkInstallCacheHit(b *testing.B) {
	specs, err := ParseSpecs([]byte(toyYAML))
	if err != nil {
		b.Fatal(err)
	}
	s := specs["toy"]
	e, err := New(Config{Dir: b.TempDir(), Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	lock, err := e.Resolve(context.Background(), s, map[string]string{"a": "1"})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		in, err := e.Install(context.Background(), s, lock)
		if err != nil || !in.Cached && e.InstallRuns() > 1 {
			b.Fatal(err)
		}
		in.Release()
	}
}

// A caller waiting to install while others hold the finished directory (shared, for as
// long as their workers run) must not wait for the exclusive lock forever: it takes the
// directory as soon as it exists.
func TestToyWaiterTakesDirectoryHeldByOthers(t *testing.T) {
	s := toySpec(t)
	e := newEngine(t, nil, nil)
	lock, err := e.Resolve(context.Background(), s, map[string]string{"held": "1"})
	if err != nil {
		t.Fatal(err)
	}
	holder, err := flockWait(context.Background(), filepath.Join(e.Config().Dir, "locks", lock.Hash), syscall.LOCK_SH, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	done := make(chan error, 1)
	var in *Installed
	go func() {
		var err error
		in, err = e.Install(context.Background(), s, lock)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // Install is now waiting for the exclusive lock
	// Another process finishes the install (and holds it: the holder above).
	final := filepath.Join(e.Config().Dir, "installs", lock.Hash)
	mustWrite(t, filepath.Join(final, markerName), []byte(`{"title":"toy","hash":"`+lock.Hash+`","size":1}`))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		defer in.Release()
		if !in.Cached || e.InstallRuns() != 0 {
			t.Fatalf("%+v, %d runs", in, e.InstallRuns())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter is stuck behind the holders' shared lock")
	}
}

// Resolve answers a request it resolved within ResolvedTTL from memory: the same
// packages, specs and source; anything else (another spec, another source, no TTL) runs
// the resolver.
func TestToyResolvedTTL(t *testing.T) {
	vars := map[string]string{"TOY_REPO": "/srv/toy"}
	e := newEngine(t, vars, nil)
	s := toySpec(t)
	ctx := context.Background()
	a, err := e.Resolve(ctx, s, map[string]string{"abc": "1.0"})
	if err != nil {
		t.Fatal(err)
	}
	a.Files["deps.lock"][0] = 'X' // the caller's copy: the remembered lock stays intact
	b, err := e.Resolve(ctx, s, map[string]string{"abc": "1.0"})
	if err != nil || e.ResolveRuns() != 1 || b.Verify(s) != nil || string(b.Files["deps.lock"]) != "abc==1.0\n" {
		t.Fatalf("remembered: %v, %d runs, %q", err, e.ResolveRuns(), b.Files["deps.lock"])
	}
	if _, err := e.Resolve(ctx, s, map[string]string{"abc": "1.1"}); err != nil || e.ResolveRuns() != 2 {
		t.Fatalf("another spec: %v, %d runs", err, e.ResolveRuns())
	}
	vars["TOY_REPO"] = "/srv/other"
	if _, err := e.Resolve(ctx, s, map[string]string{"abc": "1.0"}); err != nil || e.ResolveRuns() != 3 {
		t.Fatalf("another source: %v, %d runs", err, e.ResolveRuns())
	}
	// Failures are not remembered.
	if _, err := e.Resolve(ctx, s, map[string]string{"missing": "1"}); err == nil {
		t.Fatal("missing resolved")
	}
	if _, err := e.Resolve(ctx, s, map[string]string{"missing": "1"}); err == nil || e.ResolveRuns() != 5 {
		t.Fatalf("a failure was remembered: %d runs", e.ResolveRuns())
	}

	off := newEngine(t, nil, func(c *Config) { c.ResolvedTTL = -1 })
	for range 2 {
		if _, err := off.Resolve(ctx, s, map[string]string{"abc": "1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	if off.ResolveRuns() != 2 {
		t.Fatalf("ResolvedTTL off: %d runs", off.ResolveRuns())
	}
}

// Concurrent requests for the same set share one resolve (and so one lock), even with
// ResolvedTTL off.
func TestToyConcurrentResolveOnce(t *testing.T) {
	slow := ExecFunc(func(ctx context.Context, c Cmd) ([]byte, []byte, error) {
		time.Sleep(300 * time.Millisecond)
		return LocalExecutor{}.Exec(ctx, c)
	})
	e := newEngine(t, nil, func(c *Config) { c.ResolvedTTL = -1; c.Exec = slow })
	s := toySpec(t)
	var wg sync.WaitGroup
	locks := make([]*Lock, 3)
	for i := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := e.Resolve(context.Background(), s, map[string]string{"abc": "1.0"})
			if err != nil {
				t.Error(err)
			}
			locks[i] = l
		}()
	}
	wg.Wait()
	if e.ResolveRuns() != 1 {
		t.Fatalf("%d resolves for one set", e.ResolveRuns())
	}
	for _, l := range locks {
		if l == nil || l.Hash != locks[0].Hash {
			t.Fatalf("locks differ: %+v", locks)
		}
	}
	if locks[0] == locks[1] {
		t.Fatal("callers share one *Lock")
	}
}

// The bundled entries keep fetching apart from installing: a command that may reach the
// network (in any configuration of the package sources) only downloads — resolves a lock
// from metadata, stores tarballs or wheels — and every command that unpacks packages or
// could run package code (npm ci, pip install, cargo) is `network: none`.
func TestBundledInstallersFetchApartFromInstalling(t *testing.T) {
	specs, err := registrySpecs()
	if err != nil {
		t.Fatal(err)
	}
	configs := []map[string]string{
		{},
		{"LAMBDA_PIP_INDEX_URL": "https://pypi.example/simple", "LAMBDA_NPM_REGISTRY": "https://npm.example/"},
		{"LAMBDA_PIP_WHEELHOUSE": "/srv/wheels"},
	}
	runsPackages := func(args []string) bool {
		a := " " + strings.Join(args, " ") + " "
		return strings.Contains(a, " npm ci ") || strings.Contains(a, " pip install ") || strings.Contains(a, "cargo ")
	}
	downloads := func(args []string) bool {
		a := strings.Join(args, " ")
		return strings.Contains(a, "--package-lock-only") || strings.Contains(a, "pip download") || strings.Contains(a, `"cache", "add"`)
	}
	for title, s := range specs {
		for _, vars := range configs {
			e, err := New(Config{Dir: t.TempDir(), Getenv: func(k string) string { return vars[k] }})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.data(s, nil, "/dir", "/final")
			if err != nil {
				t.Fatal(err)
			}
			d.Home = "/home"
			installs := 0
			for _, step := range []string{"resolve", "install"} {
				n := len(s.Resolve)
				if step == "install" {
					n = len(s.Install)
				}
				for i := range n {
					args, network, err := s.command(step, i, d)
					if err != nil {
						t.Fatal(err)
					}
					if runsPackages(args) {
						installs++
						if network != NetworkNone {
							t.Errorf("%s %s %v (%v): installs with network %s", title, step, args, vars, network)
						}
					}
					if network == NetworkRegistry && !downloads(args) {
						t.Errorf("%s %s %v (%v): reaches the network and is not a download step", title, step, args, vars)
					}
				}
			}
			if installs == 0 {
				t.Errorf("%s: no install command found (the check recognises npm ci, pip install, cargo)", title)
			}
		}
	}
}
