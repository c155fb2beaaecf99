package callback

import (
	"hash/fnv"
	"math"
	"strconv"
	"time"
)

// Backoff is the retry schedule for one callback: exponential from Initial by Multiplier up
// to Max, each delay shortened by up to Jitter (a fraction), giving up once the next
// attempt would start more than GiveUpAfter after the first.
//
// Recommended use in the Temporal delivery activity: one Deliver per activity attempt, each
// signed afresh (SignAll at the attempt's time: a signature older than the receiver's
// tolerance, 5 min by default, is rejected), with
//
//	RetryPolicy{InitialInterval: 1s, BackoffCoefficient: 2, MaximumInterval: 10m,
//	            MaximumAttempts: 0, NonRetryableErrorTypes: ["CallbackFailed"]}
//	ScheduleToCloseTimeout: 24h   (DefaultBackoff.GiveUpAfter; the give-up is Temporal's)
//	StartToCloseTimeout:    30s   (Config.Timeout 15 s plus margin)
//
// A Retry result is returned as temporal.NewApplicationErrorWithOptions(reason,
// "CallbackRetry", {NextRetryDelay: d}) with d from DefaultBackoff.Next (this adds the jitter
// and Retry-After that the server's own policy lacks; the policy above is the fallback and
// gives the same curve without them); a Failed result as a non-retryable "CallbackFailed"
// error. Attempts, last status and reason go into the envelope's callback state on every
// attempt (activity.GetInfo(ctx).Attempt counts them), so the state is right even when the
// 24 h run out between attempts.
type Backoff struct {
	Initial     time.Duration
	Max         time.Duration
	Multiplier  float64
	Jitter      float64 // 0–1: a delay d becomes d·(1 − Jitter·u), u ∈ [0,1) from the key
	GiveUpAfter time.Duration
}

// DefaultBackoff retries after ~1 s, 2 s, 4 s … 10 min, then every 8–10 min, for 24 h: about
// 170 attempts (153 without the jitter).
var DefaultBackoff = Backoff{
	Initial:     time.Second,
	Max:         10 * time.Minute,
	Multiplier:  2,
	Jitter:      0.2,
	GiveUpAfter: 24 * time.Hour,
}

// Delay is the wait after failed attempt n (1 for the first attempt) before attempt n+1.
// The jitter is a hash of key and n rather than a random number, so a Temporal workflow
// can compute it deterministically on replay; give each callback its own key (its execution
// or run id) so that callbacks failing together do not retry in lockstep.
func (b Backoff) Delay(n int, key string) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(n-1))
	if b.Max > 0 && (d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d)) {
		d = float64(b.Max)
	}
	if j := min(max(b.Jitter, 0), 1); j > 0 {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(n)))
		u := float64(h.Sum64()>>11) / (1 << 53) // [0, 1)
		d *= 1 - j*u
	}
	return time.Duration(d)
}

// Next returns how long to wait after failed attempt n, elapsed after the first attempt
// started, honouring the receiver's Retry-After (Result.RetryAfter, capped at Max); false
// means give up: the next attempt would start after GiveUpAfter.
func (b Backoff) Next(n int, key string, elapsed, retryAfter time.Duration) (time.Duration, bool) {
	d := b.Delay(n, key)
	if retryAfter > d {
		d = retryAfter
		if b.Max > 0 && d > b.Max {
			d = b.Max
		}
	}
	if b.GiveUpAfter > 0 && elapsed+d > b.GiveUpAfter {
		return 0, false
	}
	return d, true
}
