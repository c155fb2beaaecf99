package frame

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
	}{
		{"empty", ""},
		{"json", `{"type":"invoke","event":{"a":1}}`},
		{"binary", "\x00\x01\x02\xff"},
		{"large", strings.Repeat("x", 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := Append(nil, []byte(tt.payload))
			require.Len(t, b, HeaderSize+len(tt.payload))
			got, rest, err := Decode(append(b, 'z'), DefaultMaxSize)
			require.NoError(t, err)
			require.Equal(t, tt.payload, string(got))
			require.Equal(t, "z", string(rest))
		})
	}
}

func TestBeginEnd(t *testing.T) {
	t.Parallel()
	b, start := Begin([]byte("prefix"))
	b = append(b, `{"x":1}`...)
	End(b, start)
	got, rest, err := Decode(b[len("prefix"):], 100)
	require.NoError(t, err)
	require.Equal(t, `{"x":1}`, string(got))
	require.Empty(t, rest)
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"no header", []byte{0, 0}, 10, ErrShort},
		{"short payload", []byte{0, 0, 0, 5, 'a'}, 10, ErrShort},
		{"too large", []byte{0, 0, 1, 0}, 10, ErrTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff}, DefaultMaxSize, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Decode(tt.in, tt.max)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	var stream bytes.Buffer
	payloads := []string{"one", "", strings.Repeat("b", 2<<20), "four"}
	for _, p := range payloads {
		require.NoError(t, Write(&stream, []byte(p)))
	}
	r := NewReader(&stream, 0)
	for _, p := range payloads {
		got, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, p, string(got))
	}
	_, err := r.Next()
	require.ErrorIs(t, err, io.EOF)
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"cut in header", []byte{0, 0}, 0, io.ErrUnexpectedEOF},
		{"cut in payload", []byte{0, 0, 0, 9, 'a', 'b'}, 0, io.ErrUnexpectedEOF},
		{"over limit", []byte{0, 0, 0, 9}, 8, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewReader(bytes.NewReader(tt.in), tt.max).Next()
			require.True(t, errors.Is(err, tt.want), "got %v", err)
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add(Append(Append(nil, []byte(`{"a":1}`)), []byte("x")))
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		var fromDecode [][]byte
		rest := b
		for {
			p, r, err := Decode(rest, limit)
			if err != nil {
				break
			}
			require.LessOrEqual(t, len(p), limit)
			require.Less(t, len(r), len(rest))
			fromDecode = append(fromDecode, p)
			rest = r
		}
		// The streaming Reader agrees with Decode frame by frame.
		rd := NewReader(bytes.NewReader(b), limit)
		for i, want := range fromDecode {
			got, err := rd.Next()
			require.NoError(t, err, "frame %d", i)
			require.True(t, bytes.Equal(want, got), "frame %d differs", i)
		}
		// Re-encoding what was decoded reproduces the consumed prefix.
		var re []byte
		for _, p := range fromDecode {
			re = Append(re, p)
		}
		require.True(t, bytes.Equal(b[:len(b)-len(rest)], re))
	})
}
