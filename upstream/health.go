package upstream

import (
	"context"
	"errors"
	"math"
	"net"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// member is one upstream of a Group with its health: passive (consecutive
// failures mark it down) and active (a prober brings it back up).
type member struct {
	u     Upstream
	m     *upstreamMetrics
	fails atomic.Int32
	down  atomic.Bool
	ewma  atomic.Uint64 // latency EWMA in ns as float64 bits; 0 = not measured yet
}

// ewmaWeight is the weight of a new latency sample: about the last 5 samples
// matter, so a server that slows down loses its place within a few queries.
const ewmaWeight = 0.2

func (mb *member) latency() float64 { return math.Float64frombits(mb.ewma.Load()) }

func (mb *member) observe(d time.Duration) {
	for {
		old := mb.ewma.Load()
		v := math.Float64frombits(old)
		if v == 0 {
			v = float64(d)
		} else {
			v += ewmaWeight * (float64(d) - v)
		}
		if mb.ewma.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

// exchange runs one exchange on mb and feeds its outcome to the health
// tracking. ctx is the member's own context: when it ended (the caller gave
// up, or a race was won elsewhere) the outcome says nothing about mb.
func (g *Group) exchange(ctx context.Context, mb *member, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := mb.u.Exchange(ctx, req)
	elapsed := time.Since(start)
	switch {
	case err == nil:
		mb.fails.Store(0)
		mb.observe(elapsed)
	case ctx.Err() != nil || errors.Is(err, net.ErrClosed):
		// Not mb's fault.
	default:
		mb.observe(elapsed) // a failure costs what it took, so fastest avoids it
		if n := mb.fails.Add(1); n >= int32(g.maxFails) {
			g.markDown(mb, err)
		}
	}
	return resp, err
}

// markDown takes mb out of rotation and starts probing it.
func (g *Group) markDown(mb *member, err error) {
	if !mb.down.CompareAndSwap(false, true) {
		return
	}
	g.log.Warn("upstream marked down", "upstream", mb.u.String(), "failures", mb.fails.Load(), "err", err)
	mb.m.setUp(false)
	g.goTracked(func() { g.probe(mb) })
}

func (g *Group) markUp(mb *member) {
	mb.fails.Store(0)
	mb.down.Store(false)
	mb.m.setUp(true)
	g.log.Info("upstream back up", "upstream", mb.u.String())
}

// probe queries a down member with bounded exponential backoff until it
// answers (any RCODE: it is reachable and speaks DNS) or the group closes.
func (g *Group) probe(mb *member) {
	delay := g.probeMin
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.probeTimeout)
		start := time.Now()
		_, err := mb.u.Exchange(ctx, g.probeMsg)
		cancel()
		if err == nil {
			mb.ewma.Store(0) // measure afresh
			mb.observe(time.Since(start))
			g.markUp(mb)
			return
		}
		if g.ctx.Err() != nil {
			return
		}
		g.log.Debug("probe failed", "upstream", mb.u.String(), "err", err, "next", delay)
		delay = min(2*delay, g.probeMax)
		t.Reset(delay)
	}
}

// newProbe is the probe query: NS of name (the root by default), which
// every recursive server answers and an authoritative one at least refuses.
func newProbe(name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeNS)
	m.SetEdns0(1232, false)
	return m
}

// MemberStatus is one upstream of a [Group] as its health tracking sees it.
type MemberStatus struct {
	URL     string
	Up      bool
	Latency time.Duration // EWMA of recent exchanges; 0 = not measured yet
}

// Status reports the group's upstreams in configuration order, for admin
// pages and readiness checks (ready while any is up).
func (g *Group) Status() []MemberStatus {
	out := make([]MemberStatus, len(g.members))
	for i, mb := range g.members {
		out[i] = MemberStatus{URL: mb.u.String(), Up: !mb.down.Load(), Latency: time.Duration(mb.latency())}
	}
	return out
}
