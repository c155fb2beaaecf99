package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPerOpSplitsCPUByProgramAndTheRest(t *testing.T) {
	p := ProcCPU{Interval: 10 * time.Second, Total: 3 * time.Second, Groups: []ProcGroup{
		{Name: "temporal", CPU: 1500 * time.Millisecond},
		{Name: "lambda api", CPU: time.Second},
		{Name: "postgres", CPU: 400 * time.Millisecond},
		{Name: "redis-server", CPU: 100 * time.Millisecond},
	}}
	require.Equal(t, "temporal 1.5, lambda api 1.0, other 0.5 = 3.0 ms per run", p.PerOp(1000, 2, "run"))
	require.Equal(t, "temporal 1.5, lambda api 1.0, postgres 0.4, redis-server 0.1 = 3.0 ms per run", p.PerOp(1000, 9, "run"))
	require.Equal(t, "not measured", p.PerOp(0, 2, "run"))
	require.Equal(t, "not measured", ProcCPU{}.PerOp(10, 2, "run"))
}
