package bench

import (
	"os"
	"syscall"
)

// datasync flushes f's data as PostgreSQL's default wal_sync_method does (fdatasync).
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
