package provider

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openfaas/faas-provider/types"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// function is one deployed runtime function and its replicas.
type function struct {
	p         *Provider
	name      string
	createdAt time.Time
	logs      *logRing

	mu       sync.Mutex
	spec     types.FunctionDeployment
	gen      int        // deployment generation, bumped by update
	replicas []*replica // current generation first, then replicas being replaced
	desired  int
	seq      int // replica id counter

	lastBusy time.Time // the autoscaler last saw a busy worker (or scaled)

	ready   atomic.Pointer[[]*replica] // ready replicas, for the proxy's lock-free pick
	changed chan struct{}              // closed and replaced when the ready set changes; guarded by mu
	rr      atomic.Uint64
}

func newFunction(p *Provider, spec types.FunctionDeployment) *function {
	fn := &function{
		p:         p,
		name:      spec.Service,
		createdAt: time.Now().UTC(),
		logs:      newLogRing(p.cfg.LogLines),
		spec:      spec,
		changed:   make(chan struct{}),
	}
	fn.ready.Store(&[]*replica{})
	return fn
}

func (fn *function) specCopy() types.FunctionDeployment {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.spec
}

// scale starts or stops replicas of the current generation until there are n. fn.mu held.
func (fn *function) scale(n int) {
	fn.desired = n
	var current []*replica
	for _, r := range fn.replicas {
		if r.gen == fn.gen {
			current = append(current, r)
		}
	}
	for len(current) < n {
		r := fn.startReplica()
		current = append(current, r)
	}
	for len(current) > n {
		r := current[len(current)-1]
		current = current[:len(current)-1]
		fn.dropReplica(r)
		go r.stop()
	}
}

// startReplica creates and starts a replica of the current spec. fn.mu held.
func (fn *function) startReplica() *replica {
	fn.seq++
	r := &replica{
		fn:   fn,
		id:   fmt.Sprintf("%s-%d", fn.name, fn.seq),
		gen:  fn.gen,
		spec: fn.spec,
		done: make(chan struct{}),

		readyOnce: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(fn.p.ctx)
	fn.replicas = append(fn.replicas, r)
	go r.supervise()
	return r
}

// dropReplica removes r from the replica list and the ready set. fn.mu held.
func (fn *function) dropReplica(r *replica) {
	for i, x := range fn.replicas {
		if x == r {
			fn.replicas = append(fn.replicas[:i:i], fn.replicas[i+1:]...)
			break
		}
	}
	r.ready.Store(false)
	fn.publishReady()
}

// update starts a new generation of replicas with spec; the old generation is stopped
// once the new one is ready (or did not become ready within the ready timeout).
func (fn *function) update(spec types.FunctionDeployment) {
	fn.mu.Lock()
	fn.spec = spec
	fn.gen++
	old := append([]*replica(nil), fn.replicas...)
	n := scaleLabel(spec.Labels, LabelScaleMin, fn.desired)
	if n < fn.desired {
		n = fn.desired
	}
	fn.scale(n)
	var fresh []*replica
	for _, r := range fn.replicas {
		if r.gen == fn.gen {
			fresh = append(fresh, r)
		}
	}
	fn.mu.Unlock()

	go func() {
		deadline := time.NewTimer(fn.p.cfg.ReadyTimeout)
		defer deadline.Stop()
		for _, r := range fresh {
			select {
			case <-r.readyOnce:
			case <-r.done:
			case <-deadline.C:
			}
		}
		fn.mu.Lock()
		for _, r := range old {
			fn.dropReplica(r)
		}
		fn.mu.Unlock()
		for _, r := range old {
			go r.stop()
		}
	}()
}

// stopAll stops every replica and waits for them.
func (fn *function) stopAll() {
	fn.mu.Lock()
	rs := fn.replicas
	fn.replicas = nil
	fn.desired = 0
	for _, r := range rs {
		r.ready.Store(false)
	}
	fn.publishReady()
	fn.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()
}

// publishReady recomputes the ready set and wakes waiting calls. fn.mu held.
func (fn *function) publishReady() {
	var ready []*replica
	for _, r := range fn.replicas {
		if r.ready.Load() {
			ready = append(ready, r)
		}
	}
	fn.ready.Store(&ready)
	close(fn.changed)
	fn.changed = make(chan struct{})
	fn.p.metrics.Replicas.WithLabelValues(fn.name).Set(float64(len(ready)))
}

func (fn *function) setReady(r *replica, ready bool) {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	r.ready.Store(ready)
	fn.publishReady()
}

func (fn *function) readySnapshot() []*replica { return *fn.ready.Load() }

// waitReady returns a channel closed at the next change of the ready set.
func (fn *function) waitReady() <-chan struct{} {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	return fn.changed
}

// pick chooses the ready replica with the fewest calls in flight, starting the scan at a
// round-robin offset so that ties spread evenly.
func (fn *function) pick() *replica {
	ready := fn.readySnapshot()
	switch len(ready) {
	case 0:
		return nil
	case 1:
		return ready[0]
	}
	start := int(fn.rr.Add(1) % uint64(len(ready)))
	best := ready[start]
	bestN := best.inflight.Load()
	for i := 1; i < len(ready) && bestN > 0; i++ {
		r := ready[(start+i)%len(ready)]
		if n := r.inflight.Load(); n < bestN {
			best, bestN = r, n
		}
	}
	return best
}

func (fn *function) status() types.FunctionStatus {
	fn.mu.Lock()
	spec := fn.spec
	desired := fn.desired
	fn.mu.Unlock()
	st := types.FunctionStatus{
		Name:                   spec.Service,
		Image:                  spec.Image,
		Namespace:              Namespace,
		EnvProcess:             spec.EnvProcess,
		EnvVars:                maps.Clone(spec.EnvVars),
		Constraints:            spec.Constraints,
		Secrets:                spec.Secrets,
		Labels:                 spec.Labels,
		Annotations:            spec.Annotations,
		Limits:                 spec.Limits,
		Requests:               spec.Requests,
		ReadOnlyRootFilesystem: spec.ReadOnlyRootFilesystem,
		Replicas:               uint64(desired),
		AvailableReplicas:      uint64(len(fn.readySnapshot())),
		CreatedAt:              fn.createdAt,
	}
	return st
}

// autoscale adds a replica while the ready replicas' busy and queued calls fill the share
// AutoscaleUp of their workers, and removes one after AutoscaleIdle without a busy worker,
// within the scale labels. Replicas still starting count as capacity on their way.
func (fn *function) autoscale(now time.Time) {
	cfg := fn.p.cfg
	ready := fn.readySnapshot()
	var busy, workers int64
	for _, r := range ready {
		busy += r.busy.Load() + r.queued.Load()
		workers += r.workers.Load()
	}
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if workers == 0 || fn.desired == 0 {
		return // nothing reports a load (not a runtime host), or scaled to zero on purpose
	}
	minN := scaleLabel(fn.spec.Labels, LabelScaleMin, 1)
	maxN := scaleLabel(fn.spec.Labels, LabelScaleMax, cfg.MaxReplicas)
	starting := 0
	for _, r := range fn.replicas {
		if r.gen == fn.gen && !r.ready.Load() {
			starting++
		}
	}
	switch {
	case busy > 0 && float64(busy) >= cfg.AutoscaleUp*float64(workers) && starting == 0 && fn.desired < maxN:
		fn.lastBusy = now
		fn.scale(fn.desired + 1)
		fn.p.log.Info("function scaled out", zap.String(logging.FieldFunction, fn.name), zap.Int("replicas", fn.desired),
			zap.Int64("busy", busy), zap.Int64("workers", workers))
	case busy > 0 || fn.lastBusy.IsZero():
		fn.lastBusy = now
	case now.Sub(fn.lastBusy) >= cfg.AutoscaleIdle && fn.desired > minN:
		fn.lastBusy = now
		fn.scale(fn.desired - 1)
		fn.p.log.Info("function scaled in", zap.String(logging.FieldFunction, fn.name), zap.Int("replicas", fn.desired))
	}
}
