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
