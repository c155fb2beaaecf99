package soak

import (
	"math"
	"sort"
	"time"
)

// Avail is availability over a set of requests.
type Avail struct {
	Offered, OK, FirstOK int
	P50, P99             float64 // ms, over the answered-as-expected requests
}

// Ratio is OK/Offered (1 when nothing was offered).
func (a Avail) Ratio() float64 {
	if a.Offered == 0 {
		return 1
	}
	return float64(a.OK) / float64(a.Offered)
}

// FirstRatio is the share answered right on the first attempt (a client without retries).
func (a Avail) FirstRatio() float64 {
	if a.Offered == 0 {
		return 1
	}
	return float64(a.FirstOK) / float64(a.Offered)
}

// Errors are the requests not answered as expected.
func (a Avail) Errors() int { return a.Offered - a.OK }

func avail(rs []Record, keep func(*Record) bool) Avail {
	var a Avail
	var lat []float64
	for i := range rs {
		r := &rs[i]
		if !keep(r) {
			continue
		}
		a.Offered++
		if r.OK() {
			a.OK++
			lat = append(lat, r.LatencyMS)
		}
		if r.FirstOK {
			a.FirstOK++
		}
	}
	a.P50, a.P99 = quantile(lat, 0.5), quantile(lat, 0.99)
	return a
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

// Window is a fault's window: from its start to the next fault's start (or the end of
// the load), with what the requests sent in it saw.
type Window struct {
	Fault Fault
	Until time.Time
	Avail Avail // sync kinds
	// Errors counts every request of the window not answered as expected on its first
	// attempt (sync and async kinds: what a client without retries sees); Recovery is
	// from the first of them to the end of the last (0: none).
	Errors   int
	Recovery time.Duration
}

// Windows cuts the load at the faults' starts.
func Windows(rs []Record, faults []Fault, end time.Time) []Window {
	fs := append([]Fault(nil), faults...)
	sort.Slice(fs, func(i, j int) bool { return fs[i].Start.Before(fs[j].Start) })
	var out []Window
	for i, f := range fs {
		until := end
		if i+1 < len(fs) {
			until = fs[i+1].Start
		}
		in := func(r *Record) bool { return !r.Sent.Before(f.Start) && r.Sent.Before(until) }
		w := Window{Fault: f, Until: until, Avail: avail(rs, func(r *Record) bool { return in(r) && r.Kind.Sync() })}
		var first, last time.Time
		for i := range rs {
			r := &rs[i]
			if !in(r) || r.FirstOK {
				continue
			}
			w.Errors++
			if first.IsZero() || r.Sent.Before(first) {
				first = r.Sent
			}
			if done := r.Sent.Add(time.Duration(r.LatencyMS * float64(time.Millisecond))); done.After(last) {
				last = done
			}
		}
		if w.Errors > 0 {
			w.Recovery = last.Sub(first)
		}
		out = append(out, w)
	}
	return out
}

// FaultSummary is one fault kind over the soak.
type FaultSummary struct {
	Kind        string
	Injected    int
	Failed      int // injections that did not work (see the fault's Err)
	Avail       Avail
	Errors      int
	P99         float64       // the worst window's p99 (ms)
	Recovery    time.Duration // the longest
	Downtime    time.Duration // the longest fault (process back, signal lifted)
	Violations  []string      // ids of violations whose records fall in its windows
	WindowCount int
}

// Summaries groups the windows by fault kind, in the order of kinds.
func Summaries(ws []Window, kinds []string, vioAt map[string]time.Time) []FaultSummary {
	by := map[string]*FaultSummary{}
	var order []string
	for _, k := range kinds {
		by[k] = &FaultSummary{Kind: k}
		order = append(order, k)
	}
	for _, w := range ws {
		s := by[w.Fault.Kind]
		if s == nil {
			s = &FaultSummary{Kind: w.Fault.Kind}
			by[w.Fault.Kind] = s
			order = append(order, w.Fault.Kind)
		}
		s.Injected++
		s.WindowCount++
		if w.Fault.Err != "" {
			s.Failed++
		}
		s.Avail.Offered += w.Avail.Offered
		s.Avail.OK += w.Avail.OK
		s.Avail.FirstOK += w.Avail.FirstOK
		s.Errors += w.Errors
		s.P99 = max(s.P99, w.Avail.P99)
		s.Recovery = max(s.Recovery, w.Recovery)
		s.Downtime = max(s.Downtime, w.Fault.End.Sub(w.Fault.Start))
		for id, at := range vioAt {
			if !at.Before(w.Fault.Start) && at.Before(w.Until) {
				s.Violations = append(s.Violations, id)
			}
		}
	}
	out := make([]FaultSummary, 0, len(order))
	for _, k := range order {
		sort.Strings(by[k].Violations)
		out = append(out, *by[k])
	}
	return out
}

// Bucket is one second of the timeline.
type Bucket struct {
	At     time.Time
	OK     int     // requests sent in it answered as expected
	Errors int     // … not on their first attempt
	P99    float64 // ms, of its OK sync requests
}

// Timeline buckets the records by send time, step wide.
func Timeline(rs []Record, start, end time.Time, step time.Duration) []Bucket {
	n := int(end.Sub(start)/step) + 1
	if n <= 0 {
		return nil
	}
	bs := make([]Bucket, n)
	lat := make([][]float64, n)
	for i := range bs {
		bs[i].At = start.Add(time.Duration(i) * step)
	}
	for i := range rs {
		r := &rs[i]
		j := int(r.Sent.Sub(start) / step)
		if j < 0 || j >= n {
			continue
		}
		if r.OK() {
			bs[j].OK++
			if r.Kind.Sync() {
				lat[j] = append(lat[j], r.LatencyMS)
			}
		}
		if !r.FirstOK {
			bs[j].Errors++
		}
	}
	for i := range bs {
		bs[i].P99 = quantile(lat[i], 0.99)
	}
	return bs
}
