package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The serving processes collect at gcPercent unless the operator set GOGC.
func TestDefaultGCUnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	Env{}.defaultGC()
	require.Equal(t, gcPercent, debug.SetGCPercent(123), "no GOGC: the platform's default")

	Env{"GOGC": "123"}.defaultGC()
	require.Equal(t, 123, debug.SetGCPercent(100), "GOGC set: left as the runtime read it")
}
