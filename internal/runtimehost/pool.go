package runtimehost

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// poolKey identifies what a worker may serve: one script version of one function (of one
// tenant) with one environment. A worker never serves two keys.
type poolKey struct {
	sha      string
	function string
	tenant   string
	version  int64
	memory   int
	env      uint64 // hash of the env map, 0 when empty
}

// grant is what a waiting request receives.
type grant struct {
	w    *worker // a warm worker of the waiter's key, or an unassigned spare
	slot bool    // permission to start a worker (already counted in live)
}

type waiter struct {
	key poolKey
	ch  chan grant
}

// pool bounds the live worker processes and hands them to requests: an idle worker of the
// request's key (warm), else a spare (pre-started, unassigned), else a new process while
// below the bound, else a new process in place of the least recently used idle worker of
// another key, else a place in a bounded queue for a bounded time.
//
// Where the runtime's workers can start before their script is known, a request that
// needs a new process does not wait for that process alone: the process starts in the
// background and the request queues, so it gets whichever comes first — a worker of its
// key released by another request (a short handler frees one long before an interpreter
// starts) or the new process. A burst of calls on a warm function thus grows the pool
// without making its first calls wait for interpreter starts; a process that arrives when
// nobody waits any more stays as a spare for the next call that finds its key busy.
type pool struct {
	max       int
	queueMax  int
	queueWait time.Duration
	startWait time.Duration // how long a process may take to start (StartTimeout)
	prestart  bool          // the runtime's workers can start before their script is known
	start     func(s *script) (*worker, error)
	log       *zap.Logger
	metrics   *hostMetrics

	mu            sync.Mutex
	live          int // processes started or starting, spares included
	busy          int
	idle          map[poolKey][]*worker
	lru           list.List // idle workers, front = most recently used
	spares        []*worker // started, unassigned; the newest last
	spareStarting bool
	growing       int // processes starting in the background for queued requests
	spareBackoff  time.Duration
	waiters       list.List // *waiter, oldest first
	closed        bool
	onSpare       func() // called once the first spare said hello

	// share bounds the workers one tenant holds at once (0: no bound): a tenant at its
	// share waits for one of its own to come free, while other tenants' calls still find
	// workers. tenantBusy counts each tenant's held workers (and slots being started).
	share      int
	tenantBusy map[string]int
}

func newPool(max, queueMax int, queueWait, startWait time.Duration, prestart bool, start func(s *script) (*worker, error), m *hostMetrics, log *zap.Logger) *pool {
	return &pool{
		max: max, queueMax: queueMax, queueWait: queueWait, startWait: startWait, prestart: prestart,
		start: start, metrics: m, log: log, idle: map[poolKey][]*worker{}, tenantBusy: map[string]int{},
	}
}

// atShareLocked reports whether tenant holds its share of the workers. A call without a
// tenant (not the api's) is not bounded.
func (p *pool) atShareLocked(tenant string) bool {
	return p.share > 0 && tenant != "" && p.tenantBusy[tenant] >= p.share
}

// holdLocked counts a worker (or a slot for one) as held by tenant.
func (p *pool) holdLocked(tenant string) { p.tenantBusy[tenant]++ }

// unholdLocked ends one of tenant's holds.
func (p *pool) unholdLocked(tenant string) {
	if n := p.tenantBusy[tenant] - 1; n > 0 {
		p.tenantBusy[tenant] = n
	} else {
		delete(p.tenantBusy, tenant)
	}
}

// firstEligibleLocked is the oldest waiter whose tenant is below its share.
func (p *pool) firstEligibleLocked() *list.Element {
	for e := p.waiters.Front(); e != nil; e = e.Next() {
		if !p.atShareLocked(e.Value.(*waiter).key.tenant) {
			return e
		}
	}
	return nil
}

// acquire returns a worker for key. fresh reports an unassigned worker the caller must
// bind with an init frame (and discard if that fails).
func (p *pool) acquire(key poolKey, s *script) (w *worker, fresh bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, fault.New(fault.Unavailable, "runtime host is shutting down")
	}
	if p.atShareLocked(key.tenant) {
		// The tenant holds its share: it waits for one of its own workers, whatever is free.
		if p.queueWait <= 0 || p.waiters.Len() >= p.queueMax {
			p.mu.Unlock()
			return nil, false, fault.New(fault.TenantShare, "this tenant holds its share of the %d workers and the queue is full", p.max)
		}
		p.metrics.tenantWaits.Inc()
		return p.waitLocked(key, s, p.queueWait)
	}
	if ws := p.idle[key]; len(ws) > 0 {
		w = ws[len(ws)-1]
		if len(ws) == 1 {
			delete(p.idle, key)
		} else {
			p.idle[key] = ws[:len(ws)-1]
		}
		p.lru.Remove(w.elem)
		w.elem = nil
		p.busy++
		p.holdLocked(key.tenant)
		w.tenant = key.tenant
		p.gaugesLocked()
		p.mu.Unlock()
		return w, false, nil
	}
	if n := len(p.spares); n > 0 {
		w, p.spares = p.spares[n-1], p.spares[:n-1]
		p.busy++
		p.holdLocked(key.tenant)
		w.tenant = key.tenant
		p.refillLocked(true)
		p.gaugesLocked()
		p.mu.Unlock()
		return w, true, nil
	}
	// A slot for a new process: a free one, else the least recently used idle worker's.
	slot, victim := p.live < p.max, (*worker)(nil)
	if slot {
		p.live++
	} else if victim = p.evictLocked(); victim != nil {
		slot = true
	}
	canWait := p.queueWait > 0 && p.waiters.Len() < p.queueMax
	wait := p.queueWait
	switch {
	case slot && p.prestart && canWait:
		p.growLocked(victim)
		wait = max(wait, p.startWait) // a process is on its way: wait for it too
	case slot:
		p.busy++
		p.holdLocked(key.tenant)
		p.gaugesLocked()
		p.mu.Unlock()
		if victim != nil {
			victim.kill()
		}
		return p.startNew(s, key.tenant)
	case !canWait:
		p.mu.Unlock()
		return nil, false, fault.New(fault.Overloaded, "all %d workers are busy and the queue is full", p.max)
	}
	return p.waitLocked(key, s, wait)
}

// waitLocked queues the request (p.mu held; released here) until it is granted a worker
// or a slot, or wait passes.
func (p *pool) waitLocked(key poolKey, s *script, wait time.Duration) (w *worker, fresh bool, err error) {
	wt := &waiter{key: key, ch: make(chan grant, 1)}
	el := p.waiters.PushBack(wt)
	p.metrics.queue.Set(float64(p.waiters.Len()))
	p.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var g grant
	select {
	case g = <-wt.ch:
	case <-timer.C:
		p.mu.Lock()
		select {
		case g = <-wt.ch: // granted while the timer fired
			p.mu.Unlock()
		default:
			p.waiters.Remove(el)
			p.metrics.queue.Set(float64(p.waiters.Len()))
			atShare := p.atShareLocked(key.tenant)
			p.mu.Unlock()
			if atShare {
				// Only this tenant waits (its own backlog): the runtime is not overloaded.
				return nil, false, fault.New(fault.TenantShare, "this tenant holds its share of the %d workers: none of them became free within %s", p.max, wait)
			}
			return nil, false, fault.New(fault.Overloaded, "no worker became free within %s", wait)
		}
	}
	switch {
	case g.slot:
		return p.startNew(s, key.tenant)
	case g.w == nil: // the pool closed
		return nil, false, fault.New(fault.Unavailable, "runtime host is shutting down")
	}
	return g.w, !g.w.assigned, nil
}

// startNew starts a worker for tenant in a slot already counted in live, busy and the
// tenant's holds.
func (p *pool) startNew(s *script, tenant string) (*worker, bool, error) {
	w, err := p.start(s)
	if err != nil {
		p.mu.Lock()
		p.live--
		p.busy--
		p.unholdLocked(tenant)
		p.handoffLocked()
		p.gaugesLocked()
		p.mu.Unlock()
		return nil, false, fault.Wrap(fault.Unavailable, err, "cannot start a worker")
	}
	p.metrics.coldStarts.Inc()
	w.tenant = tenant // before anyone else sees it: set without the lock
	return w, true, nil
}

// release returns a worker after a request. A worker that is not healthy (timed out,
// died, broke the protocol, failed its init) is killed and its slot passed on.
func (p *pool) release(w *worker, healthy bool) {
	p.mu.Lock()
	p.busy--
	p.unholdLocked(w.tenant)
	if !healthy || p.closed {
		p.live--
		p.handoffLocked()
		p.gaugesLocked()
		p.mu.Unlock()
		w.kill()
		return
	}
	w.lastUsed = time.Now()
	w.uses++
	for e := p.waiters.Front(); e != nil; e = e.Next() {
		if wt := e.Value.(*waiter); wt.key == w.key {
			p.waiters.Remove(e)
			p.busy++
			p.holdLocked(wt.key.tenant)
			w.tenant = wt.key.tenant
			p.metrics.queue.Set(float64(p.waiters.Len()))
			p.gaugesLocked()
			wt.ch <- grant{w: w} // under the lock: a waiter timing out sees it (buffered)
			p.mu.Unlock()
			return
		}
	}
	// Someone needs another key and no process is starting for them: this slot is theirs.
	if e := p.firstEligibleLocked(); e != nil && p.waiters.Len() > p.growing {
		wt := p.waiters.Remove(e).(*waiter)
		p.busy++
		p.holdLocked(wt.key.tenant)
		p.metrics.queue.Set(float64(p.waiters.Len()))
		p.gaugesLocked()
		wt.ch <- grant{slot: true}
		p.mu.Unlock()
		w.kill()
		return
	}
	p.idle[w.key] = append(p.idle[w.key], w)
	w.elem = p.lru.PushFront(w)
	p.gaugesLocked()
	p.mu.Unlock()
}

// exited is called when a worker process ends; an idle worker or a spare leaves the pool
// (a busy one is released as unhealthy by its request).
func (p *pool) exited(w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case w.elem != nil:
		p.removeIdleLocked(w)
	case slices.Contains(p.spares, w):
		p.spares = slices.DeleteFunc(p.spares, func(s *worker) bool { return s == w })
	default:
		return
	}
	p.live--
	p.handoffLocked()
	p.gaugesLocked()
}

// growLocked starts a process in the background in a slot the caller counted in live
// (killing victim first when the slot was its): the oldest queued request gets it, unless a
// worker was released to it first; with nobody left waiting it joins the spares, and the
// next call that finds its key's workers busy takes it (an init frame, not a process
// start), so a key under sustained load still gains workers. Spares beyond one stop after
// the idle timeout.
func (p *pool) growLocked(victim *worker) {
	p.growing++
	p.gaugesLocked()
	go func() {
		if victim != nil {
			victim.kill()
		}
		w, err := p.start(nil)
		p.mu.Lock()
		p.growing--
		if err != nil {
			p.live--
			p.handoffWaiterOnlyLocked() // the oldest waiter starts one itself and sees the error
			p.gaugesLocked()
			p.mu.Unlock()
			p.log.Warn("worker did not start", logging.Err(err))
			return
		}
		placed, toWaiter := p.placeLocked(w)
		if toWaiter {
			p.metrics.coldStarts.Inc() // a request waited for this process
		}
		p.mu.Unlock()
		if !placed {
			w.kill()
		}
	}()
}

// placeLocked puts a process that just started where it is needed: to the oldest waiter,
// else among the spares. placed is false when the pool has closed (the caller kills w).
func (p *pool) placeLocked(w *worker) (placed, toWaiter bool) {
	if p.closed {
		p.live--
		return false, false
	}
	if e := p.firstEligibleLocked(); e != nil {
		wt := p.waiters.Remove(e).(*waiter)
		p.busy++
		p.holdLocked(wt.key.tenant)
		w.tenant = wt.key.tenant
		p.metrics.queue.Set(float64(p.waiters.Len()))
		p.gaugesLocked()
		wt.ch <- grant{w: w} // under the lock: a waiter timing out sees it (buffered)
		return true, true
	}
	w.lastUsed = time.Now()
	p.spares = append(p.spares, w)
	p.gaugesLocked()
	return true, false
}

// handoffLocked passes a freed slot to the oldest waiter, or to a new spare.
func (p *pool) handoffLocked() {
	if !p.handoffWaiterOnlyLocked() {
		p.refillLocked(false)
	}
}

// refillLocked starts a spare in the background when there is none. With evict it makes
// room by stopping the least recently used idle worker when the pool is full: a spare is
// worth more than the coldest warm worker because it makes any new version's first call cheap.
func (p *pool) refillLocked(evict bool) {
	if !p.prestart || p.closed || len(p.spares) > 0 || p.spareStarting || p.spareBackoff < 0 {
		return
	}
	var victim *worker
	if p.live >= p.max {
		if !evict || p.waiters.Len() > 0 || p.growing > 0 { // processes on their way become spares
			return
		}
		if victim = p.evictLocked(); victim == nil {
			return
		}
	} else {
		p.live++
	}
	p.spareStarting = true
	go func() {
		if victim != nil {
			victim.kill()
		}
		p.startSpare()
	}()
}

func (p *pool) startSpare() {
	w, err := p.start(nil)
	p.mu.Lock()
	p.spareStarting = false
	if err != nil {
		p.live--
		p.spareBackoff = min(max(2*p.spareBackoff, 100*time.Millisecond), 30*time.Second)
		backoff := p.spareBackoff
		p.handoffWaiterOnlyLocked()
		p.spareBackoff = -backoff // no refill until the retry below
		p.mu.Unlock()
		p.log.Warn("spare worker did not start", logging.Err(err), zap.Duration("retry_in", backoff))
		time.AfterFunc(backoff, func() {
			p.mu.Lock()
			p.spareBackoff = backoff
			p.refillLocked(false)
			p.mu.Unlock()
		})
		return
	}
	p.spareBackoff = 0
	onSpare := p.onSpare
	p.onSpare = nil
	placed, _ := p.placeLocked(w)
	p.mu.Unlock()
	if !placed {
		w.kill()
		return
	}
	if onSpare != nil {
		onSpare()
	}
}

// handoffWaiterOnlyLocked gives a freed slot to a waiter without starting a spare; it
// reports whether a waiter took it.
func (p *pool) handoffWaiterOnlyLocked() bool {
	if e := p.firstEligibleLocked(); e != nil && p.live < p.max {
		wt := p.waiters.Remove(e).(*waiter)
		p.live++
		p.busy++
		p.holdLocked(wt.key.tenant)
		p.metrics.queue.Set(float64(p.waiters.Len()))
		wt.ch <- grant{slot: true}
		return true
	}
	return false
}

// evictLocked removes the least recently used idle worker from the pool (the caller kills
// it outside the lock); its slot stays counted in live for the caller.
func (p *pool) evictLocked() *worker {
	e := p.lru.Back()
	if e == nil {
		return nil
	}
	w := e.Value.(*worker)
	p.removeIdleLocked(w)
	return w
}

func (p *pool) removeIdleLocked(w *worker) {
	p.lru.Remove(w.elem)
	w.elem = nil
	ws := p.idle[w.key]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(p.idle, w.key)
	} else {
		p.idle[w.key] = ws
	}
}

// reap stops idle workers unused for longer than ttl, and those that use CPU while idle
// (a thread their last call left running).
func (p *pool) reap(ttl time.Duration) {
	cutoff := time.Now().Add(-ttl)
	var victims []*worker
	p.mu.Lock()
	for e := p.lru.Front(); e != nil; {
		w := e.Value.(*worker)
		next := e.Next()
		if w.burnedWhileIdle() {
			p.removeIdleLocked(w)
			p.live--
			victims = append(victims, w)
		}
		e = next
	}
	for e := p.lru.Back(); e != nil; {
		w := e.Value.(*worker)
		prev := e.Prev()
		if w.lastUsed.After(cutoff) {
			break
		}
		p.removeIdleLocked(w)
		p.live--
		victims = append(victims, w)
		e = prev
	}
	// Spares beyond the one the pool keeps (left by bursts) stop like idle workers.
	for len(p.spares) > 1 && p.spares[0].lastUsed.Before(cutoff) {
		victims = append(victims, p.spares[0])
		p.spares = p.spares[1:]
		p.live--
	}
	if len(victims) > 0 {
		p.refillLocked(false)
		p.gaugesLocked()
	}
	p.mu.Unlock()
	for _, w := range victims {
		w.kill()
	}
}

// close kills every idle worker and spare; busy ones are killed on release.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var victims []*worker
	for e := p.lru.Front(); e != nil; e = e.Next() {
		victims = append(victims, e.Value.(*worker))
	}
	p.lru.Init()
	p.idle = map[poolKey][]*worker{}
	victims = append(victims, p.spares...)
	p.spares = nil
	for e := p.waiters.Front(); e != nil; e = e.Next() {
		close(e.Value.(*waiter).ch)
	}
	p.waiters.Init()
	p.mu.Unlock()
	for _, w := range victims {
		w.kill()
	}
}

// load is what the pool holds: busy workers (and slots), queued requests, its bound.
func (p *pool) load() (busy, queued, workers int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy, p.waiters.Len(), p.max
}

func (p *pool) gaugesLocked() {
	p.metrics.idle.Set(float64(p.live - p.busy))
	p.metrics.busy.Set(float64(p.busy))
}
