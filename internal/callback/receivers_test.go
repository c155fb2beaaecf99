package callback

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The receiver examples in README.md are testdata/receiver.py and testdata/receiver.js,
// verbatim, and are run below against what Sign and Deliver produce.
func TestREADMEShowsTheTestedReceivers(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, f := range []string{"testdata/receiver.py", "testdata/receiver.js"} {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Contains(t, string(readme), "\n"+string(src)+"```\n", f)
	}
	// The worked example's header is what Sign produces.
	example := Sign([]byte("whsec_example"), time.Unix(1767225600, 0), []byte(`{"id":"exec-1","status":"succeeded"}`))
	require.Contains(t, string(readme), "X-Lambda-Signature: "+example+"\n")
}

type receiverLang struct {
	name   string
	interp string
	script string
	// verifyDriver reads JSON cases [{header, body (base64), secret}] on stdin and prints
	// verify's answer for each on its own line.
	verifyDriver []string
}

func receiverLangs(t *testing.T) []receiverLang {
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	langs := []receiverLang{{
		name: "python", interp: "/usr/bin/python3", script: filepath.Join(dir, "receiver.py"),
		verifyDriver: []string{"-c", `import base64, json, sys
sys.path.insert(0, sys.argv[1])
from receiver import verify
for c in json.load(sys.stdin):
    print(json.dumps(verify(c["header"], base64.b64decode(c["body"]), c["secret"])))`, dir},
	}}
	node, _ := exec.LookPath("node")
	langs = append(langs, receiverLang{
		name: "node", interp: node, script: filepath.Join(dir, "receiver.js"),
		verifyDriver: []string{"-e", `const { verify } = require(process.argv[1] + "/receiver.js");
let input = "";
process.stdin.on("data", (d) => (input += d)).on("end", () => {
  for (const c of JSON.parse(input)) console.log(JSON.stringify(verify(c.header, Buffer.from(c.body, "base64"), c.secret)));
});`, dir},
	})
	return langs
}

func requireInterp(t *testing.T, l receiverLang) {
	t.Helper()
	if l.interp == "" {
		t.Skipf("%s is not installed", l.name)
	}
	if _, err := os.Stat(l.interp); err != nil {
		t.Skipf("%s: %v", l.interp, err)
	}
}

// The examples' verify agrees with Go's Verify on every case.
func TestReceiverExamplesVerifyLikeGo(t *testing.T) {
	t.Parallel()
	now := time.Now()
	old, cur, other := NewSecret(), NewSecret(), NewSecret()
	type vcase struct {
		Header string `json:"header"`
		Body   []byte `json:"body"` // base64 in JSON
		Secret string `json:"secret"`
	}
	valid := Sign([]byte(cur), now, body)
	cases := []vcase{
		{valid, body, cur},
		{valid, append(append([]byte{}, body...), '\n'), cur}, // body tampered
		{valid, body, other}, // wrong secret
		{strings.Replace(valid, "t=", "t=1", 1), body, cur},                   // timestamp tampered
		{SignAll([][]byte{[]byte(cur), []byte(old)}, now, body), body, old},   // rotation: old secret
		{SignAll([][]byte{[]byte(cur), []byte(old)}, now, body), body, cur},   // rotation: new secret
		{SignAll([][]byte{[]byte(cur), []byte(old)}, now, body), body, other}, // rotation: neither
		{Sign([]byte(cur), now.Add(-10*time.Minute), body), body, cur},        // stale
		{Sign([]byte(cur), now.Add(10*time.Minute), body), body, cur},         // from the future
		{Sign([]byte(cur), now.Add(-time.Minute), body), body, cur},           // a minute old: fine
		{"", body, cur},
		{"t=,v1=", body, cur},
		{"v1=" + strings.Repeat("0", 64), body, cur},
		{strings.Replace(valid, "v1=", "v1=zz", 1), body, cur},
		{strings.Replace(valid, "v1=", "v0=", 1), body, cur},
		{Sign([]byte(cur), now, []byte(`{"emoji":"😀","bin":"\u0000"}`)), []byte(`{"emoji":"😀","bin":"\u0000"}`), cur},
		{Sign([]byte(cur), now, []byte{}), []byte{}, cur},
	}
	want := make([]bool, len(cases))
	for i, c := range cases {
		want[i] = Verify(c.Header, c.Body, [][]byte{[]byte(c.Secret)}, now, DefaultTolerance) == nil
	}
	require.Equal(t, []bool{true, false, false, false, true, true, false, false, false, true, false, false, false, false, false, true, true}, want)
	input, err := json.Marshal(cases)
	require.NoError(t, err)

	for _, l := range receiverLangs(t) {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			requireInterp(t, l)
			cmd := exec.Command(l.interp, l.verifyDriver...)
			cmd.Stdin = strings.NewReader(string(input))
			out, err := cmd.Output()
			require.NoError(t, err, "%s", exitStderr(err))
			var got []bool
			for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
				got = append(got, line == "true")
			}
			require.Equal(t, want, got)
		})
	}
}

// The examples run as servers and receive real deliveries: signed with the secret they
// hold → 204 and the envelope printed; during a rotation (both secrets) → 204; with
// another secret → 400, which the client reports as failed.
func TestReceiverExamplesReceiveDeliveries(t *testing.T) {
	t.Parallel()
	for _, l := range receiverLangs(t) {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			requireInterp(t, l)
			secret := NewSecret()
			ctx, cancel := context.WithCancel(context.Background())
			cmd := exec.CommandContext(ctx, l.interp, l.script)
			cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT=0", "LAMBDA_WEBHOOK_SECRET="+secret)
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			stderr := &lockedBuffer{}
			cmd.Stderr = stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cancel(); cmd.Wait() })
			lines := make(chan string, 16)
			go func() {
				s := bufio.NewScanner(stdout)
				for s.Scan() {
					lines <- s.Text()
				}
				close(lines)
			}()
			next := func() string {
				select {
				case line, ok := <-lines:
					require.True(t, ok, "receiver exited: %s", stderr.String())
					return line
				case <-time.After(10 * time.Second):
					t.Fatalf("no output from the receiver: %s", stderr.String())
					return ""
				}
			}
			port, ok := strings.CutPrefix(next(), "listening on ")
			require.True(t, ok)
			url := "http://127.0.0.1:" + port + "/callback"

			c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
			res := c.Deliver(context.Background(), url, body, Sign([]byte(secret), time.Now(), body))
			require.Equal(t, Result{Status: Delivered, HTTPStatus: 204, Reason: "HTTP 204"}, res, stderr.String())
			line := next()
			require.True(t, strings.HasPrefix(line, "verified "), line)
			require.Contains(t, line, "exec-1")

			rotated := SignAll([][]byte{[]byte(NewSecret()), []byte(secret)}, time.Now(), body)
			res = c.Deliver(context.Background(), url, body, rotated)
			require.Equal(t, Delivered, res.Status, stderr.String())
			next()

			res = c.Deliver(context.Background(), url, body, Sign([]byte(NewSecret()), time.Now(), body))
			require.Equal(t, Failed, res.Status)
			require.Equal(t, 400, res.HTTPStatus)
		})
	}
}

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
