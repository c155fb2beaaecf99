package cache

import (
	"errors"
	"sync"
	"time"
)

// Config tunes the process's own copy of recent hits (a near cache in front of Redis).
// Entries are immutable — a key names one script version and one event — and every copy
// expires with its Redis entry, so the copy never outlives the cache TTL the function was
// registered with; LocalTTL bounds only how long a process may keep serving an entry that
// was removed from Redis behind its back (FLUSHDB, DEL).
type Config struct {
	LocalTTL   time.Duration `env:"LAMBDA_CACHE_LOCAL_TTL" envDefault:"5s"`         // 0 turns the local copy off
	LocalBytes int           `env:"LAMBDA_CACHE_LOCAL_BYTES" envDefault:"33554432"` // memory for local copies
}

// Validate rejects negative settings (0 turns the local copy off).
func (c Config) Validate() error {
	if c.LocalTTL < 0 || c.LocalBytes < 0 {
		return errors.New("LAMBDA_CACHE_LOCAL_TTL and LAMBDA_CACHE_LOCAL_BYTES must not be negative")
	}
	return nil
}

// entryOverhead approximates a local entry's bookkeeping (map slot, strings' headers).
const entryOverhead = 128

// local holds copies of recent hits up to a byte budget; when full it evicts expired
// entries and then arbitrary ones (Go's map iteration order is random).
type local struct {
	ttl      time.Duration
	maxBytes int

	mu      sync.Mutex
	entries map[string]localEntry
	bytes   int
}

type localEntry struct {
	e       Entry
	expires int64 // unix nanos
	size    int
}

func newLocal(cfg Config) *local {
	if cfg.LocalTTL <= 0 || cfg.LocalBytes <= 0 {
		return nil
	}
	return &local{ttl: cfg.LocalTTL, maxBytes: cfg.LocalBytes, entries: map[string]localEntry{}}
}

func (l *local) get(key string, now time.Time) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.entries[key]
	if !ok {
		return Entry{}, false
	}
	if now.UnixNano() >= le.expires {
		l.remove(key, le)
		return Entry{}, false
	}
	return le.e, true
}

// put keeps e until expires (its Redis entry's end) or LocalTTL from now, the earlier.
// An entry larger than a 64th of the budget is not kept.
func (l *local) put(key string, e Entry, expires, now time.Time) {
	if l == nil {
		return
	}
	if limit := now.Add(l.ttl); expires.After(limit) {
		expires = limit
	}
	size := len(key) + len(e.Result) + len(e.Stdout) + len(e.Stderr) + entryOverhead
	if !expires.After(now) || size > l.maxBytes/64 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.entries[key]; ok {
		l.remove(key, old)
	}
	if l.bytes+size > l.maxBytes {
		n := now.UnixNano()
		for k, le := range l.entries {
			if n >= le.expires {
				l.remove(k, le)
			}
		}
		for k, le := range l.entries {
			if l.bytes+size <= l.maxBytes {
				break
			}
			l.remove(k, le)
		}
	}
	l.entries[key] = localEntry{e: e, expires: expires.UnixNano(), size: size}
	l.bytes += size
}

func (l *local) remove(key string, le localEntry) {
	delete(l.entries, key)
	l.bytes -= le.size
}
