package devstack

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/workflows"
)

// The dev server starts with every search attribute the workflows set or upsert.
func TestDevServerRegistersEverySearchAttribute(t *testing.T) {
	require.ElementsMatch(t, workflows.SearchAttributeNames, SearchAttributes)
	cmd, err := temporalCommand(&Stack{TemporalAddr: "127.0.0.1:7233", opts: Options{TemporalHeadless: true, TemporalInMemory: true}})
	require.NoError(t, err)
	for _, name := range workflows.SearchAttributeNames {
		require.Contains(t, cmd.args, name+"=Keyword")
	}
}

// The dev server runs on half the cores unless the environment says otherwise.
func TestDevServerGetsHalfTheCores(t *testing.T) {
	require.Equal(t, 1, temporalProcs(1))
	require.Equal(t, 1, temporalProcs(2))
	require.Equal(t, 4, temporalProcs(8))
	s := &Stack{TemporalAddr: "127.0.0.1:7233", opts: Options{TemporalHeadless: true, TemporalInMemory: true}}
	cmd, err := temporalCommand(s)
	require.NoError(t, err)
	require.Contains(t, cmd.env, "GOMAXPROCS="+strconv.Itoa(temporalProcs(runtime.NumCPU())))
	s.opts.Environ = map[string]string{"GOMAXPROCS": "3"}
	cmd, err = temporalCommand(s)
	require.NoError(t, err)
	require.Contains(t, cmd.env, "GOMAXPROCS=3")
}
