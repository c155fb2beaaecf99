package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/core"
)

// Error types of the callback delivery activity: a retryable attempt, and a delivery the
// receiver (or the SSRF guard) refused for good.
const (
	ErrCallbackRetry  = "CallbackRetry"
	ErrCallbackFailed = "CallbackFailed"
)

// CallbackInput names a callback: the execution's or run's id.
type CallbackInput struct {
	ID string `json:"id"`
}

// DeliverCallback makes one delivery attempt (the activity's attempt number counts
// them). A retryable outcome is an error whose next retry follows callback.DefaultBackoff
// (jitter keyed by the id, the receiver's Retry-After); a refused one is non-retryable.
func (a *Activities) DeliverCallback(ctx context.Context, in CallbackInput) (err error) {
	defer a.track("DeliverCallback")(&err)
	info := activity.GetInfo(ctx)
	n := int(info.Attempt)
	d, err := a.core.DeliverCallback(ctx, in.ID, n)
	if err != nil {
		return classify("deliver callback", err)
	}
	switch {
	case d.Done, d.Status == callback.Delivered:
		return nil
	case d.Status == callback.Failed:
		return temporal.NewNonRetryableApplicationError(d.Reason, ErrCallbackFailed, nil)
	}
	delay, _ := callback.DefaultBackoff.Next(n, in.ID, 0, d.RetryAfter) // the give-up is the ScheduleToCloseTimeout
	return temporal.NewApplicationErrorWithOptions(d.Reason, ErrCallbackRetry,
		temporal.ApplicationErrorOptions{NextRetryDelay: delay})
}

// GiveUpCallbackInput records a callback whose retries ran out.
type GiveUpCallbackInput struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// GiveUpCallback records the callback failed.
func (a *Activities) GiveUpCallback(ctx context.Context, in GiveUpCallbackInput) (err error) {
	defer a.track("GiveUpCallback")(&err)
	return classify("give up callback", a.core.GiveUpCallback(ctx, in.ID, in.Reason))
}

// ScheduledInput names one firing of a schedule: key identifies it (its workflow).
type ScheduledInput struct {
	Tenant   string `json:"tenant"`
	Schedule string `json:"schedule"`
	Key      string `json:"key"`
}

// StartScheduled records the execution or run of one firing of a schedule.
func (a *Activities) StartScheduled(ctx context.Context, in ScheduledInput) (_ core.ScheduledStart, err error) {
	defer a.track("StartScheduled")(&err)
	st, err := a.core.StartScheduled(ctx, in.Tenant, in.Schedule, in.Key)
	return st, classify("start scheduled", err)
}
