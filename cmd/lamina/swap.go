package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// swapHandler is the Handler every listener holds. It forwards to the current
// generation's resolver, which a reload replaces with one atomic store: a
// query already inside the old resolver finishes there, the next one goes to
// the new one, and none is dropped.
type swapHandler struct {
	cur atomic.Pointer[active]
}

// active is a generation while it serves, with a count of the queries inside
// it so that it is closed only once they are done.
type active struct {
	gen      *generation
	inflight atomic.Int64
}

var (
	_ resolver.Handler     = (*swapHandler)(nil)
	_ resolver.WireHandler = (*swapHandler)(nil)
)

func (h *swapHandler) ServeDNS(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
	a := h.cur.Load()
	a.inflight.Add(1)
	defer a.inflight.Add(-1)
	return a.gen.res.ServeDNS(ctx, q)
}

// ServeWire is the cache-hit fast path; it never waits on an upstream, so it
// is not counted in inflight.
func (h *swapHandler) ServeWire(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
	return h.cur.Load().gen.res.ServeWire(q, raw, dst)
}

// swap makes g current and returns what was (nil the first time).
func (h *swapHandler) swap(g *generation) *active {
	return h.cur.Swap(&active{gen: g})
}

func (h *swapHandler) gen() *generation { return h.cur.Load().gen }

// retireAfter is the least time an old generation is kept after a swap: a
// query that loaded the old pointer just before the swap has surely counted
// itself in by then.
const retireAfter = time.Second

// retire closes old once no query is inside it, or after limit at most (the
// transports' query deadline has cancelled whatever is left by then).
func retire(old *active, next *generation, limit time.Duration) {
	go func() {
		start := time.Now()
		time.Sleep(retireAfter)
		for old.inflight.Load() > 0 && time.Since(start) < limit {
			time.Sleep(50 * time.Millisecond)
		}
		old.gen.close(next)
	}()
}
