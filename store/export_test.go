package store

import "time"

// SetIdleCheck shortens how often a quiet finish feed checks its connection (tests only).
func SetIdleCheck(f *FinishFeed, d time.Duration) { f.idleCheck = d }
