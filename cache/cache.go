package cache

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/miekg/dns"
)

// Cache is an LRU of DNS responses; it satisfies resolver.Cache. It is safe
// for concurrent use, never retains or modifies the messages given to it, and
// must be created with New.
type Cache struct {
	s       settings
	seed    maphash.Seed
	shards  []shard
	mask    uint64
	l2      *redisL2  // nil without Config.Redis
	packers sync.Pool // *packer

	// hashMask is ANDed to every key's hash: all ones, but tests clear
	// bits to force collisions between keys.
	hashMask uint64
}

// shard is one lock's worth of the cache. Sharding by key hash keeps
// concurrent hits (each moves its entry to the LRU front) off one mutex.
type shard struct {
	mu       sync.Mutex
	lru      *simplelru.LRU[uint64, ref]
	bytes    int64 // mu
	maxBytes int64

	hits, misses, stale, prefetches, evictions atomic.Uint64
	_                                          [64]byte // keep shards on separate cache lines
}

// New returns a cache configured by cfg; see Config for the zero values.
func New(cfg Config) (*Cache, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	n := 1
	if s.maxEntries >= 4096 { // small caches keep one exact LRU
		n = 16
	}
	c := &Cache{s: s, seed: maphash.MakeSeed(), shards: make([]shard, n), mask: uint64(n - 1), hashMask: ^uint64(0)}
	c.packers.New = newPacker
	for i := range c.shards {
		sh := &c.shards[i]
		sh.maxBytes = s.maxBytes / int64(n)
		sh.lru, err = simplelru.NewLRU(max(s.maxEntries/n, 1), func(_ uint64, r ref) { sh.bytes -= r.entry().size() })
		if err != nil {
			return nil, err
		}
	}
	if cfg.Redis != nil {
		if c.l2, err = newRedis(*cfg.Redis, c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Close releases the Redis connection and stops listening for flushes; the
// local cache keeps working (Redis is then skipped as down). It is idempotent
// and a no-op without Redis.
func (c *Cache) Close() error {
	if c.l2 == nil {
		return nil
	}
	return c.l2.close()
}

func (c *Cache) shard(key []byte) (*shard, uint64) {
	h := maphash.Bytes(c.seed, key) & c.hashMask
	return &c.shards[h&c.mask], h
}

// lookup finds key's entry and judges it at time now. A response that would
// exceed max bytes is a Miss that leaves the entry's state alone, and so is
// anything but Fresh when freshOnly (the wire path, see AppendWire).
func (c *Cache) lookup(key []byte, now int64, stale, freshOnly bool, max int, edns bool) (entry, uint8, uint32) {
	sh, h := c.shard(key)
	sh.mu.Lock()
	r, ok := sh.lru.Get(h)
	e := r.entry()
	if !ok || !e.matches(key) {
		sh.mu.Unlock()
		return nil, Miss, 0
	}
	if left := e.expire() - now; left > 0 {
		if e.respLen(edns, false) > max {
			sh.mu.Unlock()
			return nil, Miss, 0
		}
		fr := Fresh
		if c.s.prefetchHits > 0 && !e.prefetch() && e.kind() != servFail && uint32(e.hits())+1 >= c.s.prefetchHits &&
			left*prefetchShare < int64(e.ttl())*int64(time.Second) {
			if freshOnly {
				sh.mu.Unlock()
				return nil, Miss, 0
			}
			e.setPrefetch()
			fr = Refresh
		}
		if h := e.hits(); h < 1<<16-1 {
			e.setHits(h + 1)
		}
		sh.mu.Unlock()
		sh.hits.Add(1)
		if fr == Refresh {
			sh.prefetches.Add(1)
		}
		return e, fr, uint32((left + int64(time.Second) - 1) / int64(time.Second))
	}
	if e.kind() == servFail || c.s.maxStale < 0 || now-e.expire() >= c.s.maxStale {
		sh.lru.Remove(h) // past any use
		sh.mu.Unlock()
		return nil, Miss, 0
	}
	if freshOnly || !(stale || c.s.swr || e.failing(now)) || e.respLen(edns, true) > max {
		sh.mu.Unlock()
		return nil, Miss, 0
	}
	sh.mu.Unlock()
	sh.stale.Add(1)
	return e, Stale, staleTTL
}

// AppendWire implements resolver.Cache's fast path. It answers only Fresh:
// an entry due for prefetch, a stale one (stale-while-revalidate) or an
// unusual query is declined as a Miss with no side effect, so that the
// caller's slow path, Get, reports it and the resolver acts on it. It counts
// hits but not misses, since the caller falls back to Get, which counts them.
func (c *Cache) AppendWire(dst, raw []byte, max int) ([]byte, uint8) {
	q, ok := parseQuery(raw)
	if !ok {
		return dst, Miss
	}
	var kb [maxKey]byte
	key := appendKey(kb[:0], raw[headerLen:q.nameEnd], q.qtype, q.qclass, q.do, raw[3]&flagCD != 0)
	e, fr, ttl := c.lookup(key, c.s.now(), false, true, max, q.edns)
	if fr == Miss {
		return dst, fr
	}
	id := uint16(raw[0])<<8 | uint16(raw[1])
	return e.appendTo(dst, id, raw[2]&(flagRD>>8) != 0, raw[headerLen:q.nameEnd], q.edns, q.do, fr == Stale, ttl), fr
}

// Get implements resolver.Cache. The returned message is the caller's.
func (c *Cache) Get(req *dns.Msg, stale bool) (*dns.Msg, uint8) {
	if req == nil || len(req.Question) != 1 {
		return nil, Miss
	}
	q := req.Question[0]
	var nb [maxName + 1]byte
	n, err := dns.PackDomainName(q.Name, nb[:], 0, nil, false)
	if err != nil || n == 0 {
		return nil, Miss
	}
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()
	var kb [maxKey]byte
	key := appendKey(kb[:0], nb[:n], q.Qtype, q.Qclass, do, req.CheckingDisabled)
	now := c.s.now()
	e, fr, ttl := c.lookup(key, now, stale, false, 0xffff, opt != nil)
	if fr == Miss && c.l2 != nil {
		// Another instance may have it (or a fresher copy of an expired one).
		if e2 := c.l2.get(key, now); e2 != nil && c.store(key, e2, now, true) {
			e, fr, ttl = c.lookup(key, now, stale, false, 0xffff, opt != nil)
		}
	}
	if fr == Miss {
		if !stale { // a stale lookup follows a counted miss
			sh, _ := c.shard(key)
			sh.misses.Add(1)
		}
		return nil, fr
	}
	wire := e.appendTo(make([]byte, 0, e.respLen(opt != nil, fr == Stale)),
		req.Id, req.RecursionDesired, nb[:n], opt != nil, do, fr == Stale, ttl)
	m := new(dns.Msg)
	if err := m.Unpack(wire); err != nil {
		return nil, Miss
	}
	return m, fr
}

// Set implements resolver.Cache: it stores what is cacheable of resp, the
// answer to req, and ignores the rest.
func (c *Cache) Set(req, resp *dns.Msg) {
	if req == nil || resp == nil || len(req.Question) != 1 || len(resp.Question) != 1 ||
		!resp.Response || resp.Truncated || resp.Opcode != dns.OpcodeQuery {
		return
	}
	q, rq := req.Question[0], resp.Question[0]
	if rq.Qtype != q.Qtype || rq.Qclass != q.Qclass || !strings.EqualFold(rq.Name, q.Name) {
		return
	}
	var nb [maxName + 1]byte
	n, err := dns.PackDomainName(q.Name, nb[:], 0, nil, false)
	if err != nil || n == 0 {
		return
	}
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()
	var kb [maxKey]byte
	key := appendKey(kb[:0], nb[:n], q.Qtype, q.Qclass, do, req.CheckingDisabled)
	name := key[:n]

	s, ok := selectRecords(q, resp, do)
	if !ok {
		return
	}
	ttl := s.ttl
	switch s.kind {
	case positive:
		ttl = min(max(ttl, c.s.minTTL), c.s.maxTTL)
	case negative:
		ttl = min(ttl, c.s.maxNegTTL)
	case servFail:
		ttl = c.s.servFailTTL
	}
	if ttl == 0 {
		return // RFC 1035 §3.2.1: TTL 0 is for this transaction only
	}
	now := c.s.now()
	e, ok := newEntry(&c.packers, q, name, req, resp, s, ttl, do, now+int64(ttl)*int64(time.Second))
	if !ok {
		return
	}
	if c.store(key, e, now, false) && c.l2 != nil {
		c.l2.put(key, e, now, c.s.maxStale)
	}
}

// store adds e under key and reports whether it did; onlyNewer keeps an
// entry that expires later (for copies fetched from Redis).
func (c *Cache) store(key []byte, e entry, now int64, onlyNewer bool) bool {
	sh, h := c.shard(key)
	if e.size() > sh.maxBytes {
		return false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.lru.Peek(h); ok {
		old := r.entry()
		if onlyNewer && old.matches(key) && old.expire() >= e.expire() {
			return false
		}
		if e.kind() == servFail && old.kind() != servFail && old.matches(key) {
			// Keep a fresh answer, and keep an expired one for serve-stale,
			// not asking upstream again for a while (RFC 8767 §5).
			if old.expire() <= now {
				old.failFor(now, time.Duration(c.s.servFailTTL)*time.Second)
			}
			if old.expire() > now || c.s.maxStale >= 0 && now-old.expire() < c.s.maxStale {
				return false
			}
		}
		sh.bytes -= old.size() // Add replaces it without the eviction callback
	}
	if sh.lru.Add(h, refOf(e)) {
		sh.evictions.Add(1)
	}
	sh.bytes += e.size()
	for sh.bytes > sh.maxBytes {
		if _, _, ok := sh.lru.RemoveOldest(); !ok {
			break
		}
		sh.evictions.Add(1)
	}
	return true
}
