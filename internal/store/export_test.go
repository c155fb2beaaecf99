package store

import (
	"context"
	"time"
)

// SetIdleCheck shortens how often a quiet finish feed checks its connection (tests only).
func SetIdleCheck(f *FinishFeed, d time.Duration) { f.idleCheck = d }

// MarkRunning moves a queued or running execution to running, as an attempt does.
func (s *Store) MarkRunning(ctx context.Context, tenant, id string, attempt int) error {
	_, err := s.StartAttempt(ctx, tenant, id, attempt)
	return err
}

// AdmitFarFromCap runs the one-statement admissions of an async execution and a run
// under a cap of maxOpen, without the locked path behind them: inserted says whether
// the row was written.
func (s *Store) AdmitFarFromCap(ctx context.Context, e *Execution, r *Run, maxOpen int) (inserted bool, err error) {
	sql := enqueueFarFromCap
	var args []any
	if r != nil {
		sql = insertRunFarFromCap
		args, err = runArgs(r)
	} else {
		args, err = executionArgs(e)
	}
	if err != nil {
		return false, err
	}
	return s.admitFarFromCap(ctx, sql, args, maxOpen)
}
