package runtimehost

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// meter is a process whose CPU time the test sets, counting the reads.
type meter struct {
	cpu   time.Duration
	reads int
}

func (m *meter) Pid() int                        { return 1 }
func (m *meter) Wait() (*os.ProcessState, error) { return nil, nil }
func (m *meter) Kill()                           {}
func (m *meter) CPUTime() time.Duration          { m.reads++; return m.cpu }

// A worker back soon after its call is not read (it cannot have burnt more than the
// slack in that time on this machine's CPUs); one idle longer is, and recycled when it
// burnt more than the slack.
func TestIdleCPUIsReadOnlyWhenItCouldExceedTheSlack(t *testing.T) {
	m := &meter{cpu: time.Second}
	w := &worker{proc: m, idleCPU: -1}
	require.False(t, w.burnedWhileIdle(), "never idle yet: unknown")
	w.markIdle()
	require.Equal(t, 1, m.reads)
	m.cpu += time.Hour // whatever it claims, it had no time to burn it
	require.False(t, w.burnedWhileIdle())
	require.Equal(t, 1, m.reads, "not read right after its call")

	w.idleAt = time.Now().Add(-idleCPUSlack) // idle long enough to have burnt the slack
	require.True(t, w.burnedWhileIdle())
	require.Equal(t, 2, m.reads)
	m.cpu = 2 * time.Second
	w.markIdle()
	w.idleAt = time.Now().Add(-time.Minute)
	m.cpu += idleCPUSlack / 2
	require.False(t, w.burnedWhileIdle(), "housekeeping within the slack")
}
