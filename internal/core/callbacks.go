package core

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// CallbackStart names a finished execution or run whose callback is to be delivered.
type CallbackStart struct {
	Kind   string `json:"kind"` // store.KindExecution or store.KindRun
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
}

// CallbackDurable delivers callbacks durably; the Temporal side implements it
// (workflows.Starter): one workflow "callback-"+ID per callback, started however often
// it is asked for (a repeat joins the one already started).
type CallbackDurable interface {
	StartCallback(ctx context.Context, c CallbackStart) error
}

// Deliverer makes one delivery attempt (*callback.Client).
type Deliverer interface {
	Deliver(ctx context.Context, url string, body []byte, sig string) callback.Result
}

// validCallback checks a callback URL when the work is accepted: http or https and
// parseable. Where it may connect is decided at connect time (callback.Guard).
func (s *Service) validCallback(url string) error {
	if url == "" {
		return nil
	}
	if s.callbacks == nil {
		return fault.New(fault.Unavailable, "completion callbacks are not enabled on this server")
	}
	if _, err := callback.ValidateURL(url); err != nil {
		return fault.New(fault.Invalid, "X-Callback-Url: %s", err.Error())
	}
	return nil
}

// origin is what an accepted piece of work writes with its row besides itself.
func origin(schedule, callbackURL string) *store.Origin {
	if schedule == "" && callbackURL == "" {
		return nil
	}
	return &store.Origin{Schedule: schedule, CallbackURL: callbackURL}
}

// notify starts the delivery of a finished execution's or run's callback. A start that
// fails is returned: the caller's activity retries it (the start is idempotent).
func (s *Service) notify(ctx context.Context, kind, tenant, id string) error {
	if s.callbacks == nil {
		return nil
	}
	return s.callbacks.StartCallback(ctx, CallbackStart{Kind: kind, Tenant: tenant, ID: id})
}

// notifyRun starts a finished run's callback delivery when it asked for one.
func (s *Service) notifyRun(ctx context.Context, runID string) error {
	if s.callbacks == nil {
		return nil
	}
	cb, err := s.store.GetCallback(ctx, runID)
	switch {
	case fault.Is(err, fault.NotFound):
		return nil
	case err != nil:
		return err
	case cb.State != store.CallbackPending:
		return nil
	}
	return s.notify(ctx, cb.Kind, cb.Tenant, runID)
}

// WebhookSecret is a tenant's callback signing secret as the API shows it.
type WebhookSecret struct {
	Secret string `json:"secret"`
	// Previous still signs every callback until PreviousExpiresAt (24 h after a rotation).
	Previous          string     `json:"previous,omitempty"`
	PreviousExpiresAt *time.Time `json:"previous_expires_at,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	RotatedAt         *time.Time `json:"rotated_at,omitempty"`
}

func webhookSecret(w store.WebhookSecret, now time.Time) WebhookSecret {
	out := WebhookSecret{Secret: w.Current, CreatedAt: w.CreatedAt, RotatedAt: w.RotatedAt}
	if w.Previous != "" && w.RotatedAt != nil && now.Before(w.RotatedAt.Add(callback.RotationGrace)) {
		exp := w.RotatedAt.Add(callback.RotationGrace)
		out.Previous, out.PreviousExpiresAt = w.Previous, &exp
	}
	return out
}

// GetWebhookSecret returns the tenant's signing secret, creating it on first read.
func (s *Service) GetWebhookSecret(ctx context.Context, tenant string) (WebhookSecret, error) {
	w, err := s.store.WebhookSecret(ctx, tenant, callback.NewSecret)
	if err != nil {
		return WebhookSecret{}, err
	}
	return webhookSecret(w, time.Now()), nil
}

// RotateWebhookSecret gives the tenant a new secret; callbacks are signed with both for
// the next 24 h, so a receiver holding either verifies them.
func (s *Service) RotateWebhookSecret(ctx context.Context, tenant string) (WebhookSecret, error) {
	w, err := s.store.RotateWebhookSecret(ctx, tenant, callback.NewSecret())
	if err != nil {
		return WebhookSecret{}, err
	}
	return webhookSecret(w, time.Now()), nil
}

// Delivery is what one delivery attempt did.
type Delivery struct {
	callback.Result
	Done bool // the callback was already delivered or failed: nothing was sent
}

// DeliverCallback makes attempt n of execution or run id's callback: the envelope as
// GET returns it, signed with the tenant's active secrets at this moment, POSTed once;
// the attempt, its HTTP status and the state it leaves are recorded.
func (s *Service) DeliverCallback(ctx context.Context, id string, n int) (Delivery, error) {
	if s.deliverer == nil {
		return Delivery{}, fault.New(fault.Unavailable, "no callback client is configured")
	}
	cb, err := s.store.GetCallback(ctx, id)
	if fault.Is(err, fault.NotFound) {
		return Delivery{Done: true}, nil // nothing asked for one
	}
	if err != nil {
		return Delivery{}, err
	}
	if cb.State != store.CallbackPending {
		return Delivery{Done: true}, nil
	}
	body, err := s.callbackBody(ctx, cb)
	if err != nil {
		return Delivery{}, err
	}
	w, err := s.store.WebhookSecret(ctx, cb.Tenant, callback.NewSecret)
	if err != nil {
		return Delivery{}, err
	}
	now := time.Now()
	var rotated time.Time
	if w.RotatedAt != nil {
		rotated = *w.RotatedAt
	}
	sig := callback.SignAll(callback.ActiveSecrets(w.Current, w.Previous, rotated, now), now, body)
	res := s.deliverer.Deliver(ctx, cb.URL, body, sig)
	state := store.CallbackPending
	switch res.Status {
	case callback.Delivered:
		state = store.CallbackDelivered
	case callback.Failed:
		state = store.CallbackFailed
	}
	if err := s.store.RecordCallbackAttempt(ctx, id, n, res.HTTPStatus, state, res.Reason); err != nil {
		s.log.Warn("record callback attempt", logging.Err(err), zap.String("callback.id", id))
	}
	return Delivery{Result: res}, nil
}

// GiveUpCallback records a callback whose retries ran out as failed.
func (s *Service) GiveUpCallback(ctx context.Context, id, reason string) error {
	cb, err := s.store.GetCallback(ctx, id)
	if err != nil {
		return err
	}
	return s.store.RecordCallbackAttempt(ctx, id, cb.Attempts, 0, store.CallbackFailed, reason)
}

// callbackBody is the finished envelope, without its callback state.
func (s *Service) callbackBody(ctx context.Context, cb store.Callback) ([]byte, error) {
	if cb.Kind == store.KindRun {
		r, err := s.GetRun(ctx, cb.Tenant, cb.ID)
		if err != nil {
			return nil, err
		}
		rs := []store.Run{r}
		if err := s.store.AnnotateRuns(ctx, rs); err != nil {
			return nil, err
		}
		rs[0].CallbackState = nil
		return json.Marshal(rs[0])
	}
	e, err := s.store.GetExecution(ctx, cb.Tenant, cb.ID, false)
	if err != nil {
		return nil, err
	}
	es := []store.Execution{e}
	if err := s.store.AnnotateExecutions(ctx, es); err != nil {
		return nil, err
	}
	es[0].CallbackState = nil
	return json.Marshal(es[0])
}
