package upstream

import (
	"context"
	"time"

	"github.com/miekg/dns"
)

type leg struct {
	resp *dns.Msg
	err  error
}

// race starts the members in order, the next one after each Stagger without a
// good answer or as soon as a leg fails, and returns the first good answer.
// The losers are cancelled when race returns; their goroutines are tracked by
// the group so Close waits for them.
func (g *Group) race(ctx context.Context, order []*member, req *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	legs := make(chan leg, len(order)) // buffered: losers never block
	started, running := 0, 0
	start := func() {
		mb := order[started]
		started++
		running++
		if !g.goTracked(func() {
			resp, err := g.exchange(ctx, mb, req)
			legs <- leg{resp, err}
		}) {
			legs <- leg{err: closedError(g)}
		}
	}
	start()
	t := time.NewTimer(g.stagger)
	defer t.Stop()

	var fallback *dns.Msg
	var lastErr error
	for running > 0 {
		select {
		case l := <-legs:
			running--
			if l.err == nil {
				if good(l.resp) {
					return l.resp, nil
				}
				fallback = l.resp
			} else {
				lastErr = l.err
			}
			if started < len(order) {
				start()
				t.Reset(g.stagger)
			}
		case <-t.C:
			if started < len(order) {
				start()
				t.Reset(g.stagger)
			}
		case <-ctx.Done():
			return g.fallback(ctx, fallback, ctxError(ctx))
		}
	}
	return g.fallback(ctx, fallback, lastErr)
}

// goTracked runs f in a goroutine that Close waits for, unless the group is
// closed already.
func (g *Group) goTracked(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}
