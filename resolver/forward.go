package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// forward answers req (one question, already past local data) from the
// cache or an upstream. It never fails: upstream failures become a stale
// answer or SERVFAIL with an EDE.
func (r *Resolver) forward(ctx context.Context, req *dns.Msg, client netip.Addr) (*dns.Msg, source) {
	if r.cache != nil {
		resp, fr := r.cache.Get(req, false)
		switch fr {
		case Fresh:
			return fromCache(resp, req), srcCache
		case Refresh:
			r.refresh(req, client)
			return fromCache(resp, req), srcCache
		case Stale:
			r.refresh(req, client)
			return fromCache(resp, req), srcStale
		}
	}
	q := req.Question[0]
	lname := strings.ToLower(q.Name)
	rt := r.routes.match(lname)
	if rt == nil {
		return ErrorResponse(req, errNoRoute), srcPolicy
	}
	inc(rt.queries)
	uq := r.upstreamQuery(req, client)
	f, led := r.flights.join(flightKey(rt, lname, uq), func() (*dns.Msg, error) { return r.exchange(rt, uq) })
	var staleTimer <-chan time.Time
	if r.cache != nil && r.staleAfter > 0 {
		t := time.NewTimer(r.staleAfter)
		defer t.Stop()
		staleTimer = t.C
	}
	var err error
wait:
	for {
		select {
		case <-f.done:
			if f.err == nil {
				if !led {
					r.metrics.coalesce()
				}
				return toClient(f.resp, req, f.shared()), srcUpstream
			}
			err = f.err
			break wait
		case <-staleTimer:
			if resp, fr := r.cache.Get(req, true); fr != Miss {
				return fromCache(resp, req), srcStale
			}
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	if r.cache != nil {
		if resp, fr := r.cache.Get(req, true); fr != Miss {
			return fromCache(resp, req), srcStale
		}
	}
	e := upstreamError(err)
	r.log.Debug("forwarding failed", "name", q.Name, "route", rt.zone, "err", err)
	return ErrorResponse(req, e), srcUpstream
}

// exchange runs one upstream exchange for a flight, detached from any one
// client's context so that waiters and the cache all get its result, and
// offers the answer to the cache.
//
// A panic in the upstream or the cache becomes an error: it would otherwise
// crash the process from a pool goroutine no transport can recover.
func (r *Resolver) exchange(rt *route, uq *dns.Msg) (_ *dns.Msg, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("upstream exchange panicked", "route", rt.zone, "panic", p)
			err = fmt.Errorf("exchanging with %s: panic: %v", rt.up, p)
		}
	}()
	ctx, cancel := context.WithTimeout(r.base, r.timeout)
	defer cancel()
	resp, err := rt.up.Exchange(ctx, uq)
	if err != nil {
		return nil, err
	}
	n := normalize(uq, resp)
	if r.cache != nil {
		r.cache.Set(uq, n)
	}
	return n, nil
}

// refresh re-resolves req in the background (prefetch, RFC 8767
// stale-while-revalidate), joining any flight already under way. At most
// MaxBackground refreshes run at once; extra ones are skipped.
func (r *Resolver) refresh(req *dns.Msg, client netip.Addr) {
	lname := strings.ToLower(req.Question[0].Name)
	rt := r.routes.match(lname)
	if rt == nil {
		return
	}
	select {
	case r.bgSem <- struct{}{}:
	default:
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.bgSem
		return
	}
	r.bg.Add(1)
	r.mu.Unlock()
	r.metrics.prefetch()
	uq := r.upstreamQuery(req, client)
	go func() {
		defer r.bg.Done()
		defer func() { <-r.bgSem }()
		f, _ := r.flights.join(flightKey(rt, lname, uq), func() (*dns.Msg, error) { return r.exchange(rt, uq) })
		<-f.done
		if f.err != nil {
			r.log.Debug("background refresh failed", "route", rt.zone, "err", f.err)
		}
	}()
}

// flightKey identifies queries that one upstream exchange can answer: same
// route, name (any case), type, class and DO/CD bits, as the cache keys them,
// and the same client subnet when ECS is sent.
func flightKey(rt *route, lname string, uq *dns.Msg) string {
	q := uq.Question[0]
	var b strings.Builder
	b.Grow(len(rt.zone) + len(lname) + 16)
	b.WriteString(rt.zone)
	b.WriteByte(' ')
	b.WriteString(lname)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(q.Qtype)))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(int(q.Qclass)))
	if opt := uq.IsEdns0(); opt != nil {
		if opt.Do() {
			b.WriteString(" do")
		}
		for _, o := range opt.Option { // ECS, when Config.SendECS opts in
			b.WriteByte(' ')
			b.WriteString(o.String())
		}
	}
	if uq.CheckingDisabled {
		b.WriteString(" cd")
	}
	return b.String()
}

// upstreamQuery builds the query sent upstream from scratch: the question,
// RD, the client's DO, CD and AD bits and our own EDNS. None of the client's
// EDNS options travel (ECS only when Config.SendECS opts in).
func (r *Resolver) upstreamQuery(req *dns.Msg, client netip.Addr) *dns.Msg {
	uq := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:                dns.Id(),
			RecursionDesired:  true,
			CheckingDisabled:  req.CheckingDisabled,
			AuthenticatedData: req.AuthenticatedData,
		},
		Question: []dns.Question{req.Question[0]},
	}
	opt := req.IsEdns0()
	uq.SetEdns0(DefaultUDPSize, opt != nil && opt.Do())
	if r.sendECS {
		if ecs := clientSubnet(opt, client); ecs != nil {
			o := uq.IsEdns0()
			o.Option = append(o.Option, ecs)
		}
	}
	return uq
}

// clientSubnet returns the ECS option to send: the client's own, or one
// built from its address when it is public, cut to /24 or /56 (RFC 7871
// §11.1). A client's SOURCE PREFIX-LENGTH 0 opts out (§7.1.2).
func clientSubnet(opt *dns.OPT, client netip.Addr) *dns.EDNS0_SUBNET {
	var a netip.Addr
	bits := 128
	if opt != nil {
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				if s.SourceNetmask == 0 {
					return nil
				}
				var ok bool
				if a, ok = netip.AddrFromSlice(s.Address); !ok {
					return nil
				}
				bits = int(s.SourceNetmask)
			}
		}
	}
	if !a.IsValid() {
		a = client
		if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || !a.IsGlobalUnicast() {
			return nil
		}
	}
	a = a.Unmap().WithZone("")
	family, limit := uint16(2), 56
	if a.Is4() {
		family, limit = 1, 24
	}
	bits = min(bits, limit, a.BitLen())
	p, err := a.Prefix(bits)
	if err != nil {
		return nil
	}
	return &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(bits),
		Address: net.IP(p.Addr().AsSlice()),
	}
}

// normalize turns an upstream answer into the response Lamina gives: the
// upstream's sections and RCODE under our own header and EDNS. Extended DNS
// Errors from the upstream are kept; its other options are not.
func normalize(uq, resp *dns.Msg) *dns.Msg {
	n := new(dns.Msg)
	n.SetReply(uq)
	n.RecursionAvailable = true
	n.Rcode = resp.Rcode
	n.Truncated = resp.Truncated // the cache will not keep it; the client retries over TCP
	n.AuthenticatedData = resp.AuthenticatedData
	n.Answer, n.Ns = resp.Answer, resp.Ns
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			n.Extra = append(n.Extra, rr)
		}
	}
	if opt := uq.IsEdns0(); opt != nil {
		n.SetEdns0(DefaultUDPSize, opt.Do())
		if uo := resp.IsEdns0(); uo != nil {
			no := n.IsEdns0()
			for _, o := range uo.Option {
				if _, ok := o.(*dns.EDNS0_EDE); ok {
					no.Option = append(no.Option, o)
				}
			}
		}
	}
	return n
}

// toClient fits a flight's response to one client's request: its ID, its
// question's spelling, and EDNS only if it used EDNS. A response shared with
// other waiters is copied first.
func toClient(n, req *dns.Msg, shared bool) *dns.Msg {
	if shared {
		n = n.Copy()
	}
	n.Id = req.Id
	n.Question = []dns.Question{req.Question[0]}
	n.RecursionDesired = req.RecursionDesired
	n.CheckingDisabled = req.CheckingDisabled
	spellAsAsked(n, req.Question[0].Name)
	fitEDNS(n, req)
	fitAD(n, req)
	if n.Rcode > 0xf && n.IsEdns0() == nil {
		n.Rcode = dns.RcodeServerFailure // an extended RCODE needs EDNS (RFC 6891 §6.1.3)
	}
	return n
}

// fromCache fixes up a cached response (a copy the cache made for us) for req.
func fromCache(m, req *dns.Msg) *dns.Msg {
	m.Id = req.Id
	m.RecursionAvailable = true
	spellAsAsked(m, req.Question[0].Name)
	fitEDNS(m, req)
	fitAD(m, req)
	return m
}

// fitAD clears AD for a client that set neither AD nor DO (RFC 6840 §5.8):
// flights and cache entries are shared by queries that differ in AD, so the
// upstream's AD may answer another client's question.
func fitAD(m, req *dns.Msg) {
	if !req.AuthenticatedData {
		if opt := req.IsEdns0(); opt == nil || !opt.Do() {
			m.AuthenticatedData = false
		}
	}
}

// spellAsAsked gives answer records owned by the question's name the client's
// spelling of it, which 0x20-randomizing clients check.
func spellAsAsked(m *dns.Msg, qname string) {
	for _, rr := range m.Answer {
		if h := rr.Header(); h.Name != qname && strings.EqualFold(h.Name, qname) {
			h.Name = qname
		}
	}
}

// fitEDNS makes m carry an OPT record exactly when req did (RFC 6891 §7).
func fitEDNS(m, req *dns.Msg) {
	ropt, mopt := req.IsEdns0(), m.IsEdns0()
	switch {
	case ropt == nil && mopt != nil:
		extra := m.Extra[:0:0]
		for _, rr := range m.Extra {
			if rr.Header().Rrtype != dns.TypeOPT {
				extra = append(extra, rr)
			}
		}
		m.Extra = extra
	case ropt != nil && mopt == nil:
		m.SetEdns0(DefaultUDPSize, ropt.Do())
	}
}

// isTimeout reports whether err means nothing answered in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
