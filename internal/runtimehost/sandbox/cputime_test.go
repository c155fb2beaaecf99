package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatTicksReadsUtimeAndStime(t *testing.T) {
	line := "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 120 0 0 0 37 5 0 0 20 0 1 0 100 1000 10\n"
	require.Equal(t, uint64(42), statTicks([]byte(line)), "comm with spaces and parentheses")
	require.Equal(t, uint64(0), statTicks([]byte("4242 (x) S 1 2 3")), "too short")
	require.Equal(t, uint64(0), statTicks([]byte("no parenthesis")))
	require.Equal(t, uint64(0), statTicks(nil))
}

// The meter reads a live process's CPU time through a descriptor it keeps, sees it grow,
// and counts nothing once the process is waited for (its descriptors closed).
func TestCPUMeterFollowsItsProcess(t *testing.T) {
	var m cpuMeter
	self := os.Getpid()
	before := m.cpuTime([]int{self})
	deadline := time.Now().Add(300 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = strconv.Itoa(x)
	}
	after := m.cpuTime([]int{self})
	require.Greater(t, after, before, "300 ms of busy loop")
	require.Len(t, m.files, 1, "one descriptor kept for the pid")
	require.Zero(t, m.cpuTime([]int{1 << 30}), "a pid that does not exist counts nothing")

	p, err := Plain{}.Spawn(Spec{Argv: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"}, Dir: t.TempDir()})
	require.NoError(t, err)
	meter := p.(CPUMeter)
	_, err = p.Wait()
	require.NoError(t, err)
	require.Zero(t, meter.CPUTime(), "closed with the process")
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		target, _ := os.Readlink(fd)
		require.NotContains(t, target, "/proc/"+strconv.Itoa(p.Pid())+"/", "no descriptor left on the exited process")
	}
}
