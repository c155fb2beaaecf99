package runtimehost

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// chunkReader returns its input in fixed-size pieces, so sentinels straddle reads.
type chunkReader struct {
	data string
	size int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.data == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestCaptureSplitsAtSentinels(t *testing.T) {
	t.Parallel()
	s := string(newSentinel())
	tests := []struct {
		name      string
		stream    string
		limit     int
		want      []string
		truncated []bool
		tail      string // output after the last sentinel
	}{
		{"one segment", "hello\n" + s, 100, []string{"hello\n"}, []bool{false}, ""},
		{"empty segments", s + s, 100, []string{"", ""}, []bool{false, false}, ""},
		{"capped", strings.Repeat("y", 50) + s + "ok" + s, 10, []string{strings.Repeat("y", 10), "ok"}, []bool{true, false}, ""},
		{"prefix of the sentinel is output", s[:5] + "z" + s + "tail", 100, []string{s[:5] + "z"}, []bool{false}, "tail"},
		{"partial at the end", "a" + s + "b" + s[:4], 100, []string{"a"}, []bool{false}, "b" + s[:4]},
	}
	for _, tt := range tests {
		for _, size := range []int{1, 3, 7, 64 << 10} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				c := newCapture([]byte(s), tt.limit)
				c.run(&chunkReader{data: tt.stream, size: size})
				never := make(chan time.Time)
				for i, want := range tt.want {
					seg, ok := c.take(never)
					require.True(t, ok, "segment %d", i)
					require.Equal(t, want, string(seg.data), "segment %d", i)
					require.Equal(t, tt.truncated[i], seg.truncated, "segment %d", i)
					c.release(seg)
				}
				seg, ok := c.take(never)
				require.False(t, ok, "the stream ended")
				require.Equal(t, tt.tail, string(seg.data))
			})
		}
	}
}

func TestCaptureTakeExpires(t *testing.T) {
	t.Parallel()
	c := newCapture(newSentinel(), 100)
	r, w := io.Pipe()
	go c.run(r)
	_, _ = w.Write([]byte("partial"))
	expired := make(chan time.Time, 1)
	go func() { time.Sleep(50 * time.Millisecond); expired <- time.Now() }()
	seg, ok := c.take(expired)
	require.False(t, ok)
	require.Equal(t, "partial", string(seg.data))
	w.Close()
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `quote " backslash \ slash /`, "tab\tnl\ncr\r", "\x00\x01\x1e\x1f",
		"<html>&amp;", "ünïcødé ✓ 日本", "\u2028\u2029", "bad \xff utf8 \xc3", strings.Repeat("x", 1000)} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendString(nil, s)), "%q", s)
		require.Equal(t, string(want), string(appendString(nil, []byte(s))), "%q as bytes", s)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("hello\n\"world\"")
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString(nil, s)
		var back string
		require.NoError(t, json.Unmarshal(out, &back))
		if utf8.ValidString(s) {
			require.Equal(t, s, back)
		}
	})
}
