// Package cache is Lamina's DNS-aware answer cache: an LRU (hashicorp
// golang-lru/v2) of packed responses, keyed by the lower-cased question name,
// type, class and the DO and CD bits, bounded by entries and by bytes.
//
// It owns what may be stored and for how long: only responses whose question
// matches the request, without TC, with NOERROR, NXDOMAIN or SERVFAIL; only the
// records that belong to the answer (the CNAME/DNAME chain from the question
// name to records of the question's type, the SOA of a negative answer, and
// with DO their RRSIGs and NSEC/NSEC3), so that unrelated records cannot poison
// it; TTLs that decay, clamped by Config; negative TTLs from the SOA (RFC 2308);
// brief SERVFAIL caching (RFC 9520); serve-stale with TTL 30 and EDE 3 (RFC
// 8767); and a prefetch signal for popular entries near expiry.
//
// The hit path ([Cache.AppendWire]) parses only the question of the raw query,
// copies the stored packed answer, patches the ID, the RD bit, the question
// name (so the client's 0x20 case survives) and each TTL in place, and appends
// an OPT record when the query had one. It does not allocate. It answers only
// Fresh entries; prefetch-due and stale ones go to Get, whose Freshness tells
// the resolver to refresh them.
//
// Memory: the LRU is keyed by a 64-bit hash of the key, and each entry is one
// pointer-free byte slice (a small header, the packed answer whose question
// is the full key, so that keys whose hashes collide never answer each
// other, and its TTL offsets). About 200 bytes of heap per cached A answer,
// of which golang-lru's list element and map slot take 120.
//
// An optional second level in Redis ([RedisConfig]) shares entries, in wire
// form with their absolute expiry, among instances behind one address, and
// propagates flushes over pub/sub. Only Get consults it (after a local miss),
// never the hit path, and a down or slow Redis costs at most one bounded
// timeout per second before the cache carries on alone.
//
// What it does not do: it never talks to the network (the resolver refreshes,
// prefetches and coalesces), never decides policy, exports no Prometheus
// metrics ([Cache.Stats] is adapted in cmd/), and keeps no ECS-specific entries
// (the resolver strips ECS; no OPT option of any response is ever stored or
// replayed).
//
// Dependencies: miekg/dns, golang-lru and go-redis only. *Cache satisfies
// resolver.Cache structurally: resolver.Freshness is an alias of uint8 and the
// constants in freshness.go carry the same values.
//
// RFCs: 1035, 2181 §5.2 (one TTL per RRset), 2308 (negative caching), 4035
// §3.2.2 (CD), 6891 (EDNS), 8767 (serve-stale), 8914 (EDE), 9520 (resolution
// failures).
package cache
