package resolver

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// limiter is a table of token buckets keyed by client network. The table is an
// LRU: when it is full the least recently seen network is forgotten, which at
// worst gives that network a fresh, full bucket.
type limiter struct {
	rate   float64 // tokens per nanosecond
	burst  float64
	exempt []netip.Prefix
	now    func() int64 // unix nanoseconds

	mu      sync.Mutex
	buckets *simplelru.LRU[netip.Addr, *bucket]
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill
}

// newLimiter returns nil when rate limiting is off.
func newLimiter(c RateLimit, now func() int64) *limiter {
	if c.QPS <= 0 {
		return nil
	}
	burst := float64(c.Burst)
	if burst <= 0 {
		burst = max(1, c.QPS)
	}
	size := c.MaxClients
	if size <= 0 {
		size = 65536
	}
	lru, _ := simplelru.NewLRU[netip.Addr, *bucket](size, nil) // size > 0: cannot fail
	return &limiter{
		rate:    c.QPS / float64(time.Second),
		burst:   burst,
		exempt:  append([]netip.Prefix(nil), c.Exempt...),
		now:     now,
		buckets: lru,
	}
}

// clientKey is the network a client is limited as: its /24 or /56.
func clientKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	bits := 56
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a
	}
	return p.Addr()
}

func (l *limiter) exempted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allow takes a token for client if one is available.
func (l *limiter) allow(client netip.Addr) bool {
	if l == nil || l.exempted(client) {
		return true
	}
	key := clientKey(client)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets.Add(key, b)
	}
	if el := now - b.last; el > 0 {
		b.tokens = min(l.burst, b.tokens+float64(el)*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// coarseClock returns a clock read from memory, updated every tick by a
// goroutine that ends when ctx is done: on virtual machines without a fast
// vDSO clock, time.Now costs more than a whole cache hit, and token buckets
// need no better than millisecond precision.
func coarseClock(ctx context.Context, wg *sync.WaitGroup, tick time.Duration) func() int64 {
	var ns atomic.Int64
	ns.Store(time.Now().UnixNano())
	wg.Go(func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				ns.Store(now.UnixNano())
			}
		}
	})
	return ns.Load
}

// len is the number of networks tracked, for tests.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buckets.Len()
}
