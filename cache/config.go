package cache

import (
	"errors"
	"time"
)

// Config holds the cache's settings. The zero value is a usable cache with the
// defaults documented on each field; New validates it once.
type Config struct {
	// MaxEntries bounds the number of cached answers; 0 means 100,000. From
	// 4096 up the cache is split into 16 shards (one lock each) of
	// MaxEntries/16, so eviction may start a little below the bound.
	MaxEntries int

	// MaxBytes bounds the memory the entries account for (packed answer plus a
	// fixed per-entry overhead, see Stats.Bytes); 0 means 64 MiB. Least
	// recently used entries are evicted until both bounds hold.
	MaxBytes int64

	// MinTTL raises the TTL of positive answers; 0 means no floor. MaxTTL caps
	// it; 0 means 24 h.
	MinTTL, MaxTTL time.Duration

	// MaxNegTTL caps the TTL of NXDOMAIN and NODATA answers, which is
	// otherwise min(SOA TTL, SOA MINIMUM) (RFC 2308 §5); 0 means 1 h.
	MaxNegTTL time.Duration

	// ServFailTTL is how long a SERVFAIL is cached; 0 means 5 s, negative
	// disables SERVFAIL caching. RFC 9520 §3.2 asks for at least 1 s and at
	// most 5 min, which New enforces.
	ServFailTTL time.Duration

	// MaxStale is how long after expiry an answer may still be served stale
	// (RFC 8767 §5 suggests 1–3 days); 0 means 24 h, negative disables
	// serve-stale.
	MaxStale time.Duration

	// StaleWhileRevalidate makes Get(req, false) and AppendWire answer expired
	// entries at once (as Stale) so the resolver can refresh them in the
	// background, instead of only after upstreams failed.
	StaleWhileRevalidate bool

	// PrefetchHits is how many hits an entry needs before it is reported as
	// Refresh once less than 10% of its TTL is left; 0 means 2, negative
	// disables prefetch, at most 65535.
	PrefetchHits int

	// Redis, when set, adds the shared second level (see RedisConfig); the
	// Cache then holds a connection until Close.
	Redis *RedisConfig

	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
}

// Fixed protocol values.
const (
	staleTTL      = 30              // RFC 8767 §4: TTL of stale answers
	minServFail   = time.Second     // RFC 9520 §3.2
	maxServFail   = 5 * time.Minute // RFC 9520 §3.2
	prefetchShare = 10              // refresh when less than 1/10 of the TTL is left
)

// settings is Config with defaults applied, in the units the hot path uses.
type settings struct {
	maxEntries   int
	maxBytes     int64
	minTTL       uint32 // seconds
	maxTTL       uint32
	maxNegTTL    uint32
	servFailTTL  uint32 // 0 = SERVFAIL not cached
	maxStale     int64  // nanoseconds; < 0 = no serve-stale
	swr          bool
	prefetchHits uint32       // 0 = no prefetch
	now          func() int64 // unix nanoseconds
}

func (c Config) settings() (settings, error) {
	s := settings{
		maxEntries: c.MaxEntries,
		maxBytes:   c.MaxBytes,
		swr:        c.StaleWhileRevalidate,
	}
	switch {
	case c.MaxEntries < 0, c.MaxBytes < 0, c.MinTTL < 0, c.MaxTTL < 0, c.MaxNegTTL < 0:
		return s, errors.New("cache: negative size or TTL bound")
	case c.MaxTTL > 0 && c.MinTTL > c.MaxTTL:
		return s, errors.New("cache: MinTTL above MaxTTL")
	case c.PrefetchHits > 1<<16-1:
		return s, errors.New("cache: PrefetchHits above 65535")
	case c.ServFailTTL > 0 && (c.ServFailTTL < minServFail || c.ServFailTTL > maxServFail):
		return s, errors.New("cache: ServFailTTL outside RFC 9520's 1s..5m")
	}
	if s.maxEntries == 0 {
		s.maxEntries = 100_000
	}
	if s.maxBytes == 0 {
		s.maxBytes = 64 << 20
	}
	s.minTTL = seconds(c.MinTTL)
	s.maxTTL = seconds(orDefault(c.MaxTTL, 24*time.Hour))
	s.maxNegTTL = seconds(orDefault(c.MaxNegTTL, time.Hour))
	if c.ServFailTTL >= 0 {
		s.servFailTTL = seconds(orDefault(c.ServFailTTL, 5*time.Second))
	}
	s.maxStale = int64(orDefault(c.MaxStale, 24*time.Hour))
	if c.PrefetchHits >= 0 {
		s.prefetchHits = uint32(orDefault(c.PrefetchHits, 2))
	}
	s.now = unixClock(c.Now)
	return s, nil
}

// unixClock turns Config.Now into unix nanoseconds. Without an injected clock it
// reads the monotonic clock only (time.Since): on the hit path that costs a
// fraction of time.Now, and wall-clock steps cannot stretch or cut TTLs.
func unixClock(now func() time.Time) func() int64 {
	if now != nil {
		return func() int64 { return now().UnixNano() }
	}
	base := time.Now()
	unix := base.UnixNano()
	return func() int64 { return unix + int64(time.Since(base)) }
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func seconds(d time.Duration) uint32 {
	s := d / time.Second
	if s > 1<<31-1 {
		s = 1<<31 - 1
	}
	return uint32(s)
}
