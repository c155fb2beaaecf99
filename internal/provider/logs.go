package provider

import (
	"context"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/logs"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// logRing keeps the last lines a function's replicas wrote and feeds followers.
type logRing struct {
	mu        sync.Mutex
	lines     []logs.Message
	next      int // index of the oldest line once the ring is full
	followers map[chan logs.Message]struct{}
}

func newLogRing(n int) *logRing {
	return &logRing{lines: make([]logs.Message, 0, n), followers: map[chan logs.Message]struct{}{}}
}

func (l *logRing) add(name, instance, text string) {
	m := logs.Message{Name: name, Namespace: Namespace, Instance: instance, Timestamp: time.Now().UTC(), Text: text}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < cap(l.lines) {
		l.lines = append(l.lines, m)
	} else {
		l.lines[l.next] = m
		l.next = (l.next + 1) % len(l.lines)
	}
	for ch := range l.followers {
		select {
		case ch <- m:
		default: // a slow follower loses lines rather than slowing the replica down
		}
	}
}

// snapshot returns the kept lines, oldest first.
func (l *logRing) snapshot() []logs.Message {
	out := make([]logs.Message, 0, len(l.lines))
	out = append(out, l.lines[l.next:]...)
	return append(out, l.lines[:l.next]...)
}

// requester serves the faas-provider logs API from the functions' rings.
type requester struct{ p *Provider }

// Query implements logs.Requester: the kept lines matching the request (instance, since,
// tail), then, with follow, new lines until ctx is done.
func (q requester) Query(ctx context.Context, req logs.Request) (<-chan logs.Message, error) {
	fn, ok := q.p.lookup(req.Name)
	if !ok {
		return nil, fault.New(fault.NotFound, "function %s not found", req.Name)
	}
	match := func(m logs.Message) bool {
		return (req.Instance == "" || m.Instance == req.Instance) && (req.Since == nil || !m.Timestamp.Before(*req.Since))
	}
	l := fn.logs
	l.mu.Lock()
	var backlog []logs.Message
	for _, m := range l.snapshot() {
		if match(m) {
			backlog = append(backlog, m)
		}
	}
	if req.Tail > 0 && len(backlog) > req.Tail {
		backlog = backlog[len(backlog)-req.Tail:]
	}
	var live chan logs.Message
	if req.Follow {
		live = make(chan logs.Message, 256)
		l.followers[live] = struct{}{}
	}
	l.mu.Unlock()

	out := make(chan logs.Message)
	go func() {
		defer close(out)
		if live != nil {
			defer func() {
				l.mu.Lock()
				delete(l.followers, live)
				l.mu.Unlock()
			}()
		}
		for _, m := range backlog {
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
		if live == nil {
			return
		}
		for {
			select {
			case m := <-live:
				if !match(m) {
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
