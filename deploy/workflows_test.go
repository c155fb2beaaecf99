package deploy

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/stretchr/testify/require"
	yamlv3 "gopkg.in/yaml.v3"
)

// workflow mirrors the parts of a GitHub Actions workflow these tests read. It is decoded
// with YAML 1.2 (gopkg.in/yaml.v3), as GitHub does: in YAML 1.1 the key "on" is a boolean.
type workflow struct {
	On   map[string]any `yaml:"on"`
	Jobs map[string]struct {
		Services map[string]struct {
			Image string `yaml:"image"`
		} `yaml:"services"`
		Strategy struct {
			Matrix struct {
				Include []struct {
					Name       string `yaml:"name"`
					Dockerfile string `yaml:"dockerfile"`
					Target     string `yaml:"target"`
				} `yaml:"include"`
			} `yaml:"matrix"`
		} `yaml:"strategy"`
		Steps []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// TestWorkflowsLint runs actionlint (the workflow syntax and expression checker GitHub users
// run) on every workflow: unknown keys, bad expressions, wrong action inputs, job graph.
func TestWorkflowsLint(t *testing.T) {
	t.Parallel()
	files := mustGlob(t, "../.github/workflows/*.yml")
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	require.NoError(t, err)
	errs, err := l.LintFiles(files, nil)
	require.NoError(t, err)
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	require.Empty(t, msgs)
}

func TestWorkflowCI(t *testing.T) {
	t.Parallel()
	var wf workflow
	readWorkflow(t, "../.github/workflows/ci.yml", &wf)
	require.Contains(t, wf.On, "push")
	require.Contains(t, wf.On, "pull_request")
	test := wf.Jobs["test"]
	require.Contains(t, test.Services, "postgres")
	require.Contains(t, test.Services, "redis")
	var runsTests bool
	for _, s := range test.Steps {
		runsTests = runsTests || strings.Contains(s.Run, ".ci/run") || strings.Contains(s.Run, "make test")
	}
	require.True(t, runsTests, "the test job runs make test (through .ci/run)")
	require.FileExists(t, "../.ci/run")
}

func TestWorkflowRelease(t *testing.T) {
	t.Parallel()
	var wf workflow
	readWorkflow(t, "../.github/workflows/release.yml", &wf)

	// One image per Dockerfile of the repository.
	dockerfiles := append([]string{"Dockerfile"}, func() []string {
		var out []string
		for _, f := range mustGlob(t, "../runtimes/*/Dockerfile") {
			rel, err := filepath.Rel("..", f)
			require.NoError(t, err)
			out = append(out, rel)
		}
		return out
	}()...)
	built := map[string]string{}
	for _, m := range wf.Jobs["images"].Strategy.Matrix.Include {
		built[m.Dockerfile] = m.Name
		require.FileExists(t, filepath.Join("..", m.Dockerfile))
	}
	for _, d := range dockerfiles {
		require.Contains(t, built, d, "release builds no image from %s", d)
	}
	require.Equal(t, "lambda", built["Dockerfile"])

	var pushes bool
	for _, s := range wf.Jobs["images"].Steps {
		if strings.HasPrefix(s.Uses, "docker/build-push-action@") {
			pushes = s.With["push"] == "true"
		}
	}
	require.True(t, pushes, "images are pushed")

	// Every image name the overlay pins is one the release builds and bumps.
	var k kustomization
	readYAML(t, "k8s/overlays/production/kustomization.yaml", &k, true)
	var deploySteps string
	for _, s := range wf.Jobs["deploy"].Steps {
		deploySteps += s.Run + "\n"
	}
	for _, img := range k.Images {
		name := strings.TrimPrefix(img.Name, "ghcr.io/lambda-microservice/")
		require.Contains(t, built, map[string]string{
			"lambda": "Dockerfile", "runtime-python": "runtimes/python/Dockerfile",
			"runtime-node": "runtimes/node/Dockerfile", "runtime-rust": "runtimes/rust/Dockerfile",
		}[name], img.Name)
		require.Contains(t, deploySteps, name, "the deploy job bumps %s", img.Name)
	}
	require.Contains(t, deploySteps, "argocd app sync lambda-production")
}

func readWorkflow(t *testing.T, file string, wf *workflow) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, yamlv3.Unmarshal(raw, wf), file)
}
