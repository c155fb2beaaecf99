package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type dockerStage struct {
	from, name string
	lines      []string // instructions, continuation lines joined
}

// dockerStages splits a Dockerfile into its build stages (FROM ... [AS name]).
func dockerStages(t *testing.T, file string) []dockerStage {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var stages []dockerStage
	var cur strings.Builder
	from := regexp.MustCompile(`(?i)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$`)
	flush := func() {
		ins := strings.TrimSpace(cur.String())
		cur.Reset()
		if ins == "" {
			return
		}
		if m := from.FindStringSubmatch(ins); m != nil {
			stages = append(stages, dockerStage{from: m[1], name: m[2]})
			return
		}
		if len(stages) == 0 {
			require.True(t, strings.HasPrefix(strings.ToUpper(ins), "ARG "), "%s: %q before the first FROM", file, ins)
			return
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, ins)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	require.NoError(t, sc.Err())
	flush()
	return stages
}

func stageLine(s dockerStage, prefix string) string {
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), prefix) {
			return l
		}
	}
	return ""
}

// TestDockerfile checks the platform Dockerfile's shape: the targets docker-compose and the
// release workflow build exist, the default image is distroless, non-root, with /bin/lambda
// as entrypoint and the healthcheck probe, and .dockerignore keeps what the build needs.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := dockerStages(t, "../Dockerfile")
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	require.Contains(t, byName, "build")
	require.Contains(t, byName, "local-provider")
	require.Contains(t, byName, "platform")
	final := stages[len(stages)-1]
	require.Equal(t, "platform", final.name, "the default target is the platform image")
	require.True(t, strings.HasPrefix(final.from, "gcr.io/distroless/"), final.from)
	require.True(t, strings.HasSuffix(final.from, ":nonroot"), final.from)
	require.Equal(t, "USER 65532:65532", stageLine(final, "USER"))
	require.Equal(t, `ENTRYPOINT ["/bin/lambda"]`, stageLine(final, "ENTRYPOINT"))
	require.Contains(t, stageLine(final, "COPY --FROM=BUILD"), "/out/bin/lambda")
	require.Contains(t, stageLine(final, "COPY --FROM=BUILD"), "/out/bin/healthcheck")
	lp := byName["local-provider"]
	require.Regexp(t, `^USER \d+`, stageLine(lp, "USER"))
	require.NotEqual(t, "USER 0", stageLine(lp, "USER"))
	// Its runtime hosts run workers as their own uids (file capabilities), as the runtime
	// images do: otherwise every worker shares uid 10001 with the provider and its environment.
	lpAll := strings.Join(lp.lines, "\n")
	require.Contains(t, lpAll, "setcap cap_setuid,cap_setgid,cap_chown,cap_kill,cap_dac_override+ep /usr/local/bin/lambda-runtime")
	require.Contains(t, lpAll, "chmod 0750 /usr/local/bin/lambda-runtime")
	require.Contains(t, lpAll, "chown root:10001 /usr/local/bin/lambda-runtime")

	build := strings.Join(byName["build"].lines, "\n")
	for _, pkg := range []string{"./cmd/lambda", "./cmd/lambda-runtime", "./cmd/healthcheck"} {
		require.Contains(t, build, pkg)
		require.DirExists(t, filepath.Join("..", pkg))
	}
	require.Contains(t, build, "CGO_ENABLED=0", "static binaries for distroless/static")

	// .dockerignore must not hide what the build copies.
	raw, err := os.ReadFile("../.dockerignore")
	require.NoError(t, err)
	ignore := string(raw)
	for _, kept := range []string{"cmd", "runtimes", "go.mod", "go.sum"} {
		require.NotRegexp(t, `(?m)^/?`+regexp.QuoteMeta(kept)+`/?$`, ignore, "%s is needed by the build", kept)
	}
}

// TestRuntimeDockerfilesKeepTheSecretFromWorkers: OpenFaaS mounts a function's secrets
// under /var/openfaas/secrets with mode 0644 (the Function API sets no mode), so every
// runtime image makes /var/openfaas enterable by the host's group only (0710 root:10001):
// no worker uid reaches the invoke secret. And nothing the image points a tool at for
// writing lies on the read-only root filesystem of a runtime pod: CARGO_HOME is the
// toolchain's own (each build gets its own cargo home in its work folder).
func TestRuntimeDockerfilesKeepTheSecretFromWorkers(t *testing.T) {
	t.Parallel()
	for _, lang := range []string{"python", "node", "rust"} {
		stages := dockerStages(t, filepath.Join("..", "runtimes", lang, "Dockerfile"))
		final := stages[len(stages)-1]
		all := strings.Join(final.lines, "\n")
		require.Regexp(t, `mkdir -p /var/openfaas && chown root:10001 /var/openfaas && chmod 0710 /var/openfaas`, all, lang)
		require.Equal(t, "USER 10001", stageLine(final, "USER"), lang)
		for _, l := range final.lines {
			if !strings.HasPrefix(l, "ENV ") {
				continue
			}
			if m := regexp.MustCompile(`CARGO_HOME=(\S+)`).FindStringSubmatch(l); m != nil {
				require.Equal(t, "/usr/local/cargo", m[1], "%s: CARGO_HOME is the toolchain's read-only home, not a cache path", lang)
			}
		}
	}
	// The Functions and the faas-cli stack read the secret from that mount.
	for _, file := range []string{"k8s/functions/functions.yaml", "openfaas/stack.yml"} {
		raw, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`LAMBDA_RUNTIME_SECRET_FILE: (\S+)`).FindAllStringSubmatch(string(raw), -1) {
			require.True(t, strings.HasPrefix(m[1], "/var/openfaas/secrets/"), "%s: %s", file, m[1])
		}
	}
}
