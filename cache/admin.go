package cache

import (
	"bytes"

	"github.com/miekg/dns"
)

// Stats is a snapshot of the cache's counters, for cmd/ to export.
type Stats struct {
	Hits       uint64 // fresh answers served (including Refresh)
	Misses     uint64 // Get(req, false) found nothing usable
	Stale      uint64 // stale answers served (RFC 8767)
	Prefetches uint64 // Refresh signals given
	Evictions  uint64 // entries dropped for the entry or byte bound
	Entries    int
	Bytes      int64 // packed answers plus a fixed per-entry overhead
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
	return st
}

// Flush drops every entry.
func (c *Cache) Flush() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.lru.Purge()
		sh.mu.Unlock()
	}
}

// FlushName drops the entries of name (any type, class and flags; not its
// subdomains) and returns how many there were. It scans the whole cache, so
// it is meant for operators, not for the query path.
func (c *Cache) FlushName(name string) int {
	var nb [maxName + 1]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), nb[:], 0, nil, false)
	if err != nil || n == 0 {
		return 0
	}
	want := appendKey(nil, nb[:n], 0, 0, false, false)[:n]
	removed := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, h := range sh.lru.Keys() {
			if e, ok := sh.lru.Peek(h); ok && int(e.nameLen)+1 == n &&
				bytes.Equal(e.buf[headerLen:headerLen+n], want) {
				sh.lru.Remove(h)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	return removed
}
