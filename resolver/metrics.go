package resolver

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// source says where an answer came from; it labels metrics and the query log.
type source uint8

const (
	srcCache    source = iota // fresh (or prefetch-due) cache entry
	srcStale                  // expired cache entry (RFC 8767)
	srcLocal                  // local zones, special-use names, self records
	srcUpstream               // forwarded
	srcPolicy                 // ACL, rate limit, sanity checks, RFC 8482, routing
	numSources
)

var sourceNames = [numSources]string{"cache", "stale", "local", "upstream", "policy"}

func (s source) String() string { return sourceNames[s] }

// metrics holds the resolver's collectors. A nil *metrics records nothing.
type metrics struct {
	responses    *prometheus.CounterVec
	common       [numSources][dns.RcodeRefused + 1]prometheus.Counter // pre-bound for the fast path
	refusedACL   prometheus.Counter
	refusedRate  prometheus.Counter
	ratelimited  prometheus.Counter
	coalesced    prometheus.Counter
	prefetches   prometheus.Counter
	routeQueries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lamina_refused_total", Help: "Queries refused by policy, by reason.",
	}, []string{"reason"})
	m := &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_resolver_responses_total", Help: "Responses by where the answer came from and RCODE.",
		}, []string{"source", "rcode"}),
		refusedACL:  refused.WithLabelValues("acl"),
		refusedRate: refused.WithLabelValues("ratelimit"),
		ratelimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lamina_ratelimited_total", Help: "Queries over their client network's rate (refused or dropped).",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lamina_coalesced_total", Help: "Queries answered by another query's in-flight upstream exchange.",
		}),
		prefetches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lamina_prefetches_total", Help: "Background refreshes started (prefetch and stale-while-revalidate).",
		}),
		routeQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_route_queries_total", Help: "Upstream exchanges by route zone.",
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.responses, refused, m.ratelimited, m.coalesced, m.prefetches, m.routeQueries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for s := range numSources {
		for rc := range m.common[s] {
			m.common[s][rc] = m.responses.WithLabelValues(s.String(), rcodeName(rc))
		}
	}
	return m, nil
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

func (m *metrics) response(s source, rcode int) {
	if m == nil {
		return
	}
	if rcode >= 0 && rcode < len(m.common[s]) {
		m.common[s][rcode].Inc()
		return
	}
	m.responses.WithLabelValues(s.String(), rcodeName(rcode)).Inc()
}

func inc(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

func (m *metrics) refused(acl bool) {
	if m == nil {
		return
	}
	if acl {
		m.refusedACL.Inc()
	} else {
		m.refusedRate.Inc()
	}
}

func (m *metrics) limited() {
	if m != nil {
		m.ratelimited.Inc()
	}
}

func (m *metrics) coalesce() {
	if m != nil {
		m.coalesced.Inc()
	}
}

func (m *metrics) prefetch() {
	if m != nil {
		m.prefetches.Inc()
	}
}

func (m *metrics) routeCounter(zone string) prometheus.Counter {
	if m == nil {
		return nil
	}
	return m.routeQueries.WithLabelValues(zone)
}

// logQuery writes one query log record. Client addresses are cut to their
// /24 or /48 network, and only when configured (RFC 8932 §6).
func (r *Resolver) logQuery(q *Query, name string, qtype uint16, rcode int, s source, start time.Time) {
	if r.qlog == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("name", name),
		slog.String("type", dns.Type(qtype).String()),
		slog.String("transport", q.Transport.String()),
		slog.String("rcode", rcodeName(rcode)),
		slog.String("source", s.String()),
	}
	if !start.IsZero() {
		attrs = append(attrs, slog.Duration("duration", time.Since(start)))
	}
	if r.logClientIP {
		attrs = append(attrs, slog.String("client", clientNet(q.Client.Addr()).String()))
	}
	r.qlog.LogAttrs(context.Background(), slog.LevelInfo, "query", attrs...)
}

func clientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}
