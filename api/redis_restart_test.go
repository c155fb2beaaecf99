package api_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/ratelimit"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// privateRedis is a redis-server of the test's own on a free port, so it can be killed
// and started again without disturbing other tests.
type privateRedis struct {
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		prereq.Missing(t, "no /usr/bin/redis-server (apt-get install redis-server)")
	}
	port, err := freeport.Get()
	require.NoError(t, err)
	r := &privateRedis{port: port}
	r.start(t)
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("/usr/bin/redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, r.cmd.Start())
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "redis-server listens")
}

// invoke calls fn synchronously without failing the test from a goroutine: the status
// (0 when there was no answer) and the execution id of a 200.
func (f *fixture) invoke(fn, event, token string) (int, string) {
	req, err := http.NewRequest("POST", f.srv.URL+"/v1/functions/"+fn+"/invoke", strings.NewReader(event))
	if err != nil {
		return 0, ""
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Language-Title", "python")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var env struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env.ID
}

// kill ends the server at once (SIGKILL: a crash, nothing saved).
func (r *privateRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// TestRedisCrashLosesNoCall invokes continuously (with rate limits and a cached function,
// both on Redis) while Redis is killed and started again: every call is answered 200 and
// recorded, none is refused, and the result cache serves hits again once Redis is back.
func TestRedisCrashLosesNoCall(t *testing.T) {
	t.Parallel()
	rd := startPrivateRedis(t)
	f := newFixtureOn(t, rd.url(), withAuth(ratelimit.Config{Rate: 100000, Burst: 100000, Concurrency: 512}))
	admin := bearer(adminToken)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource), admin...).status)
	body, _ := json.Marshal(map[string]any{"name": "cached", "language": "python", "source": "# cached\n" + addSource, "cache_ttl_s": 60})
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body), admin...).status)

	var mu sync.Mutex
	var ids []string
	failures := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := []string{"add", "cached"}[g%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, id := f.invoke(fn, fmt.Sprintf(`{"a":%d,"b":%d}`, g, i%3), adminToken)
				mu.Lock()
				if status == 200 && id != "" {
					ids = append(ids, id)
				} else {
					failures[status]++ // 0: no answer at all
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	rd.kill()
	mu.Lock()
	before := len(ids)
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond)
	rd.start(t)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	require.Empty(t, failures, "statuses other than 200 while Redis was down or coming back")
	require.Positive(t, before)
	require.Greater(t, len(ids), before, "calls went on while Redis was down")
	require.Equal(t, len(ids), f.count(t, "request_logs"), "every answered call is recorded")

	// The cache is bypassed for a moment after an error, then used again.
	require.Eventually(t, func() bool {
		r := f.do(t, "POST", "/v1/functions/cached/invoke", `{"a":7,"b":7}`, append(admin, "Language-Title", "python")...)
		require.Equal(t, 200, r.status, r.raw)
		return r.body["cached"] == true
	}, 10*time.Second, 50*time.Millisecond, "cache hits again after Redis came back")
}
