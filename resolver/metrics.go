package resolver

import (
	"context"
	"errors"
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

// newMetrics registers the resolver's collectors with reg. A Resolver built
// again with the same Registerer (a configuration reload) takes over the
// collectors already registered, so counters continue instead of failing.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	var errs []error
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		v, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
		errs = append(errs, err)
		return v
	}
	counter := func(name, help string) prometheus.Counter {
		c, err := register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
		errs = append(errs, err)
		return c
	}
	refused := vec("lamina_refused_total", "Queries refused by policy, by reason.", "reason")
	m := &metrics{
		responses:    vec("lamina_resolver_responses_total", "Responses by where the answer came from and RCODE.", "source", "rcode"),
		ratelimited:  counter("lamina_ratelimited_total", "Queries over their client network's rate (refused or dropped)."),
		coalesced:    counter("lamina_coalesced_total", "Queries answered by another query's in-flight upstream exchange."),
		prefetches:   counter("lamina_prefetches_total", "Background refreshes started (prefetch and stale-while-revalidate)."),
		routeQueries: vec("lamina_route_queries_total", "Queries forwarded by route zone (coalesced ones included).", "route"),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.refusedACL, m.refusedRate = refused.WithLabelValues("acl"), refused.WithLabelValues("ratelimit")
	for s := range numSources {
		for rc := range m.common[s] {
			m.common[s][rc] = m.responses.WithLabelValues(s.String(), rcodeName(rc))
		}
	}
	return m, nil
}

// register registers c, or returns the identical collector registered before.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(T); ok {
			return old, nil
		}
	}
	return c, err
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
