package runtimehost

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// segment is one execution's captured output of one stream.
type segment struct {
	data      []byte
	truncated bool
}

// capture drains one output pipe of a worker for the worker's whole life and splits what
// it reads into per-execution segments at each sentinel the bootstrap writes. It keeps at
// most limit bytes of a segment and drops the rest (setting truncated) while it keeps
// reading, so a handler printing megabytes never blocks on a full pipe.
type capture struct {
	sentinel []byte
	limit    int

	mu     sync.Mutex
	cur    []byte
	trunc  bool
	done   []segment     // finished segments not taken yet
	free   []byte        // a buffer handed back by release, reused for the next segment
	signal chan struct{} // poked when a segment finishes or the stream ends
	eof    bool
}

func newCapture(sentinel []byte, limit int) *capture {
	return &capture{sentinel: sentinel, limit: limit, signal: make(chan struct{}, 1)}
}

// run reads r until it fails (the worker and its children closed the pipe, or the host
// closed r).
func (c *capture) run(r io.Reader) {
	s := c.sentinel
	buf := make([]byte, len(s)+64<<10)
	keep := 0 // bytes at the start of buf held back as a possible sentinel prefix
	for {
		n, err := r.Read(buf[keep:])
		data := buf[:keep+n]
		for {
			i := bytes.Index(data, s)
			if i < 0 {
				break
			}
			c.append(data[:i], true)
			data = data[i+len(s):]
		}
		k := partialSuffix(data, s)
		c.append(data[:len(data)-k], false)
		keep = copy(buf, data[len(data)-k:])
		if err != nil {
			c.append(buf[:keep], false)
			c.mu.Lock()
			c.eof = true
			c.mu.Unlock()
			c.poke()
			return
		}
	}
}

// partialSuffix returns the length of the longest suffix of data that is a proper prefix
// of s.
func partialSuffix(data, s []byte) int {
	start := max(0, len(data)-len(s)+1)
	for i := start; i < len(data); i++ {
		if data[i] == s[0] && bytes.HasPrefix(s, data[i:]) {
			return len(data) - i
		}
	}
	return 0
}

func (c *capture) append(p []byte, end bool) {
	if len(p) == 0 && !end {
		return
	}
	c.mu.Lock()
	if room := c.limit - len(c.cur); room > 0 {
		if len(p) > room {
			c.cur = append(c.cur, p[:room]...)
			c.trunc = true
		} else {
			c.cur = append(c.cur, p...)
		}
	} else if len(p) > 0 {
		c.trunc = true
	}
	if end {
		c.done = append(c.done, segment{data: c.cur, truncated: c.trunc})
		c.cur, c.free, c.trunc = c.free[:0], nil, false
	}
	c.mu.Unlock()
	if end {
		c.poke()
	}
}

func (c *capture) poke() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// take returns the next finished segment, waiting until one finishes, the stream ends
// (then ok is false and the partial output is returned), or expired is closed.
func (c *capture) take(expired <-chan time.Time) (seg segment, ok bool) {
	for {
		c.mu.Lock()
		if len(c.done) > 0 {
			seg = c.done[0]
			c.done = c.done[1:]
			c.mu.Unlock()
			return seg, true
		}
		if c.eof {
			seg = c.partialLocked()
			c.mu.Unlock()
			return seg, false
		}
		c.mu.Unlock()
		select {
		case <-c.signal:
		case <-expired:
			c.mu.Lock()
			seg = c.partialLocked()
			c.mu.Unlock()
			return seg, false
		}
	}
}

// partialLocked hands out what has been captured of an unfinished segment.
func (c *capture) partialLocked() segment {
	seg := segment{data: c.cur, truncated: c.trunc}
	c.cur, c.trunc = nil, false
	return seg
}

// release gives a taken segment's buffer back for reuse.
func (c *capture) release(seg segment) {
	if cap(seg.data) == 0 {
		return
	}
	c.mu.Lock()
	if c.free == nil {
		c.free = seg.data[:0]
	}
	c.mu.Unlock()
}
