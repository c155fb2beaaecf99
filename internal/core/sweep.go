package core

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// RunState is what the durable side knows of an execution's run.
type RunState int

// The states of a durable run.
const (
	RunMissing RunState = iota // there is no run: it was never started (or is long gone)
	RunOpen                    // it runs, or waits
	RunClosed                  // it has ended
)

// Inspector tells the state of an execution's durable run (workflows.Starter).
type Inspector interface {
	ExecutionRunState(ctx context.Context, executionID string) (RunState, error)
}

// SweepOutcome counts what one sweep did.
type SweepOutcome struct {
	Restarted int // started again from their row
	Failed    int // made final as failed (Abandoned)
}

// ErrAbandoned is the error type of an execution the sweeper had to give up.
const ErrAbandoned = "Abandoned"

// SweepExecutions makes async executions whole that were accepted more than olderThan
// ago and are still queued or running, at most limit of them, oldest first:
//   - whose run is open: nothing to do, it is on its way;
//   - queued with no run (the api died between the row and the start): started now from
//     the row, the version pinned again by number — or failed when that version is gone;
//   - running with no run, or whose run ended without making the row final (terminated
//     by an operator, or its last step gave up): failed, saying so.
//
// An error (Temporal or PostgreSQL unavailable) ends the sweep; the next one goes on.
func (s *Service) SweepExecutions(ctx context.Context, ins Inspector, olderThan time.Duration, limit int) (SweepOutcome, error) {
	var out SweepOutcome
	if s.durable == nil {
		return out, errAsyncOff()
	}
	open, err := s.store.OpenAsyncExecutions(ctx, time.Now().Add(-olderThan), limit)
	if err != nil {
		return out, err
	}
	for _, o := range open {
		state, err := ins.ExecutionRunState(ctx, o.ID)
		if err != nil {
			return out, fmt.Errorf("sweep: inspect execution %s: %w", o.ID, err)
		}
		var why string
		switch {
		case state == RunOpen:
			continue
		case state == RunMissing && o.Status == store.StatusQueued:
			restarted, reason, err := s.restart(ctx, o)
			if err != nil {
				return out, err
			}
			if restarted {
				out.Restarted++
				continue
			}
			why = reason
		case state == RunMissing:
			why = "the execution was running but its durable run is gone; it may not have finished"
		default:
			why = "the execution's durable run ended without recording an outcome (terminated, or its last step gave up)"
		}
		_, cbErr := s.store.GetCallback(ctx, o.ID)
		if _, recorded, err := s.Finish(ctx, o.Tenant, o.ID, Final{Status: store.StatusFailed, ErrorType: ErrAbandoned,
			ErrorMessage: why, Notify: cbErr == nil}); err != nil {
			return out, err
		} else if recorded {
			out.Failed++
			s.log.Warn("sweeper failed an execution", zap.String(logging.FieldExecutionID, o.ID), zap.String("reason", why))
		}
	}
	return out, nil
}

// restart starts the durable run of a queued execution whose start never happened. It
// reports why not (restarted=false, no error) when its version cannot run any more.
func (s *Service) restart(ctx context.Context, o store.OpenAsync) (restarted bool, why string, err error) {
	p, err := s.Pin(ctx, o.Tenant, o.Function, o.Version, o.LanguageTitle)
	switch {
	case fault.Is(err, fault.NotFound), fault.Is(err, fault.Invalid):
		return false, "the execution was accepted but never started, and its function version can no longer run: " +
			fault.Detail(err), nil
	case err != nil:
		return false, "", err
	}
	x := AsyncExecution{ID: o.ID, LanguageTitle: o.LanguageTitle, Pinned: p}
	if _, err := s.store.GetCallback(ctx, o.ID); err == nil {
		x.Callback = true
	}
	if err := s.durable.StartExecution(ctx, x); err != nil {
		return false, "", fmt.Errorf("sweep: start execution %s: %w", o.ID, err)
	}
	s.log.Info("sweeper started an execution left queued", zap.String(logging.FieldExecutionID, o.ID))
	s.countAsync(p.Language, "restarted")
	return true, "", nil
}
