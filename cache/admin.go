package cache

import "github.com/miekg/dns"

// Stats is a snapshot of the cache's counters, for cmd/ to export.
type Stats struct {
	Hits       uint64 // fresh answers served (including Refresh)
	Misses     uint64 // Get(req, false) found nothing usable
	Stale      uint64 // stale answers served (RFC 8767)
	Prefetches uint64 // Refresh signals given
	Evictions  uint64 // entries dropped for the entry or byte bound
	Entries    int
	Bytes      int64 // packed answers plus a fixed per-entry overhead

	// With Config.Redis: answers found in Redis after a local miss, lookups
	// that found nothing there, and operations that failed, timed out or
	// were skipped while Redis was down (each one a fallback to local only).
	RedisHits, RedisMisses, RedisFailures uint64
}

// Stats returns the current counters; it is safe to call at any time.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		sh := &c.shards[i]
		st.Hits += sh.hits.Load()
		st.Misses += sh.misses.Load()
		st.Stale += sh.stale.Load()
		st.Prefetches += sh.prefetches.Load()
		st.Evictions += sh.evictions.Load()
		sh.mu.Lock()
		st.Entries += sh.lru.Len()
		st.Bytes += sh.bytes
		sh.mu.Unlock()
	}
	if c.l2 != nil {
		st.RedisHits = c.l2.hits.Load()
		st.RedisMisses = c.l2.misses.Load()
		st.RedisFailures = c.l2.fails.Load()
	}
	return st
}

// Flush drops every entry, in Redis and on every instance sharing it too.
// Redis goes first, so that nothing refills this cache from it meanwhile.
func (c *Cache) Flush() {
	if c.l2 != nil {
		if err := c.l2.flush(nil, ""); err != nil {
			c.l2.log.Warn("flush not shared", "err", err)
		}
	}
	c.flushLocal()
}

func (c *Cache) flushLocal() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.lru.Purge()
		sh.mu.Unlock()
	}
}

// FlushName drops the entries of name (any type, class and flags; not its
// subdomains), in Redis and on every instance sharing it too, and returns how
// many there were locally. It scans the whole cache, so it is meant for
// operators, not for the query path.
func (c *Cache) FlushName(name string) int {
	want := wireName(name)
	if want == nil {
		return 0
	}
	if c.l2 != nil {
		if err := c.l2.flush(want, name); err != nil {
			c.l2.log.Warn("flush not shared", "name", name, "err", err)
		}
	}
	return c.flushNameLocal(name)
}

// wireName is name's lower-cased wire form, nil if it is not a valid name.
func wireName(name string) []byte {
	var nb [maxName + 1]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), nb[:], 0, nil, false)
	if err != nil || n == 0 {
		return nil
	}
	return appendKey(nil, nb[:n], 0, 0, false, false)[:n]
}

// flushNameLocal drops name's local entries.
func (c *Cache) flushNameLocal(name string) int {
	want := wireName(name)
	if want == nil {
		return 0
	}
	removed := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, h := range sh.lru.Keys() {
			if r, ok := sh.lru.Peek(h); ok && r.entry().hasName(want) {
				sh.lru.Remove(h)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	return removed
}
