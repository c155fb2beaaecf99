package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// uidSlots hands out the unprivileged uids workers run as: one uid per live worker, so no
// two workers (of different versions, functions or tenants) ever share a uid at the same
// time, and RLIMIT_NPROC, which the kernel counts per uid, becomes a per-worker limit.
// A uid is held with an exclusive flock on a file named after it, so hosts sharing a
// machine (several runtime hosts in one test binary, parallel test binaries, a dev stack)
// never hand out the same uid twice; the kernel drops the lock if a host dies.
type uidSlots struct {
	dir   string
	base  int
	count int

	mu   sync.Mutex
	next int
}

// uidLease is one held uid.
type uidLease struct {
	uid  int
	lock *os.File
}

func newUIDSlots(base, count int) (*uidSlots, error) {
	if base < 1000 || count < 1 || base+count > 1<<31-2 {
		return nil, fmt.Errorf("sandbox uid range %d+%d: want an unprivileged range (base ≥ 1000)", base, count)
	}
	var errs []error
	for _, dir := range []string{"/run/lambda-sandbox/uids", filepath.Join(os.TempDir(), "lambda-sandbox-uids")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Access(dir, unix.W_OK); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
			continue
		}
		return &uidSlots{dir: dir, base: base, count: count}, nil
	}
	return nil, fmt.Errorf("sandbox uid locks: %w", errors.Join(errs...))
}

// acquire leases a free uid.
func (s *uidSlots) acquire() (*uidLease, error) {
	s.mu.Lock()
	start := s.next
	s.mu.Unlock()
	for i := range s.count {
		n := (start + i) % s.count
		uid := s.base + n
		f, err := os.OpenFile(filepath.Join(s.dir, strconv.Itoa(uid)), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sandbox uid lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		s.mu.Lock()
		s.next = n + 1
		s.mu.Unlock()
		return &uidLease{uid: uid, lock: f}, nil
	}
	return nil, fmt.Errorf("sandbox: all %d worker uids from %d are in use", s.count, s.base)
}

// release frees the uid; call it only once no process runs as the uid any more.
func (l *uidLease) release() {
	if l != nil && l.lock != nil {
		l.lock.Close() // drops the flock
		l.lock = nil
	}
}
