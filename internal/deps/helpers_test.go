package deps

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// needTool skips the test when a tool it needs is missing, except under CI=true where a
// missing tool is a failure (.ci/run installs them).
func needTool(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true: install it, see the package's apt list)", what)
	}
	t.Skipf("%s is missing locally (CI unset): skipping", what)
}

func defaultSpec(t *testing.T, title string) *Spec {
	t.Helper()
	specs, err := registrySpecs()
	if err != nil {
		t.Fatal(err)
	}
	s := specs[title]
	if s == nil {
		t.Fatalf("no %s entry", title)
	}
	return s
}

// newEngine returns an engine on a fresh cache root with the given variables.
func newEngine(t *testing.T, vars map[string]string, tweak func(*Config)) *Engine {
	t.Helper()
	cfg := Config{
		Dir:    t.TempDir(),
		Getenv: func(k string) string { return vars[k] },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// recorder is an Executor that records every Cmd and then runs it locally.
type recorder struct {
	mu   sync.Mutex
	cmds []Cmd
}

func (r *recorder) Exec(ctx context.Context, c Cmd) ([]byte, []byte, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
	return LocalExecutor{}.Exec(ctx, c)
}

func (r *recorder) count(step string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.cmds {
		if c.Step == step {
			n++
		}
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// registrySpecs parses the dependency entries of the runtime registry, where node, python
// and rust keep theirs.
func registrySpecs() (map[string]*Spec, error) {
	data, err := os.ReadFile(filepath.Join("..", "..", "runtimes", "runtimes.yaml"))
	if err != nil {
		return nil, err
	}
	return ParseSpecs(data)
}
