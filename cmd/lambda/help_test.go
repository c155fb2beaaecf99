package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// The root's help lists the server commands apart from the user commands, and says
// the exit codes.
func TestHelpGroupsServerAndUserCommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, Env{}, nil, &out, io.Discard))
	help := out.String()
	server := regexp.MustCompile(`(?s)Server commands:\n(.*?)\n\n`).FindStringSubmatch(help)
	user := regexp.MustCompile(`(?s)User commands:\n(.*?)\n\n`).FindStringSubmatch(help)
	require.NotNil(t, server, help)
	require.NotNil(t, user, help)
	for _, c := range []string{"api", "worker", "provider", "migrate", "dev"} {
		require.Regexp(t, `(?m)^  `+c+` `, server[1])
		require.NotRegexp(t, `(?m)^  `+c+` `, user[1])
	}
	for _, c := range []string{"login", "fn", "invoke", "exec", "logs", "pipeline", "run", "schedule", "completion"} {
		require.Regexp(t, `(?m)^  `+c+` `, user[1])
		require.NotRegexp(t, `(?m)^  `+c+` `, server[1])
	}
	require.Contains(t, help, "Exit codes: 0 ok; 1 the execution or run failed or timed out; 2 usage")
}
