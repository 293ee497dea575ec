package cache

// How a lookup went: the values of resolver.Freshness (an alias of uint8), so
// that *Cache satisfies resolver.Cache without importing it.
const (
	Miss    uint8 = iota // nothing usable
	Fresh                // within its TTL
	Refresh              // within its TTL but due for a prefetch
	Stale                // expired, within the serve-stale window (RFC 8767)
)
