package devstack

import (
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
