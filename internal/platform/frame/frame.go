// Package frame implements the length-prefixed framing of the runtime host's worker pipes:
// every message is a 4-byte big-endian payload length followed by that many bytes (a JSON
// document). Requests travel host → worker on fd 3, responses worker → host on fd 4.
package frame

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the length of a frame's length prefix.
const HeaderSize = 4

// DefaultMaxSize bounds a frame's payload unless a Reader is given another limit: an
// event of 6 MiB plus its envelope fits with room to spare.
const DefaultMaxSize = 64 << 20

// ErrTooLarge is returned for a frame whose declared length exceeds the limit.
var ErrTooLarge = errors.New("frame: payload too large")

// ErrShort is returned by Decode when the buffer ends inside a frame.
var ErrShort = errors.New("frame: short buffer")

// Append appends payload as one frame to dst.
func Append(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// Begin appends a placeholder header to dst; append the payload after it and call End
// with the returned offset to fill in the length. It lets a payload be encoded in place.
func Begin(dst []byte) ([]byte, int) {
	return append(dst, 0, 0, 0, 0), len(dst)
}

// End writes the length of the payload that follows the header at start in b.
func End(b []byte, start int) {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-HeaderSize))
}

// Write writes payload as one frame with a single Write call.
func Write(w io.Writer, payload []byte) error {
	_, err := w.Write(Append(make([]byte, 0, HeaderSize+len(payload)), payload))
	return err
}

// Decode splits the first frame off b. It returns the payload (aliasing b) and the rest,
// ErrShort when b holds no complete frame, ErrTooLarge when the length exceeds max.
func Decode(b []byte, max int) (payload, rest []byte, err error) {
	if len(b) < HeaderSize {
		return nil, b, ErrShort
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(max) {
		return nil, b, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, n, max)
	}
	if uint64(len(b)-HeaderSize) < uint64(n) {
		return nil, b, ErrShort
	}
	end := HeaderSize + int(n)
	return b[HeaderSize:end:end], b[end:], nil
}

// Reader reads frames from a stream, reusing one buffer: the payload returned by Next is
// valid until the following call.
type Reader struct {
	br  *bufio.Reader
	hdr [HeaderSize]byte
	buf []byte
	max int
}

// NewReader returns a Reader over r; max ≤ 0 means DefaultMaxSize.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next reads the next frame. A stream that ends between frames gives io.EOF, one that ends
// inside a frame io.ErrUnexpectedEOF.
func (r *Reader) Next() ([]byte, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:])
	if uint64(n) > uint64(r.max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, n, r.max)
	}
	// A buffer grown for one huge frame is dropped afterwards rather than kept for life.
	if cap(r.buf) < int(n) || (cap(r.buf) > 1<<20 && n <= 64<<10) {
		r.buf = make([]byte, n, max(int(n), 4<<10))
	}
	buf := r.buf[:n]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
