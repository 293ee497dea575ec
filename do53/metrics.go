package do53

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// DropReason says why a query got no answer; it labels
// lamina_dropped_queries_total.
type DropReason uint8

const (
	DropMalformed  DropReason = iota // not a DNS query (ParseQuery's ErrMalformed)
	DropOverload                     // the listener's in-flight bound was reached
	DropPolicy                       // the Handler returned resolver.ErrDrop
	DropSlowReader                   // a stream client stopped reading its answers and was disconnected
	numDropReasons
)

var dropNames = [numDropReasons]string{"malformed", "overload", "policy", "slow_reader"}

// String is the reason's label value.
func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Query types with a label of their own; every other type counts as "other",
// so a client cannot grow the label set.
var qtypeLabels = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeMX, dns.TypeNS, dns.TypePTR, dns.TypeSOA,
	dns.TypeSRV, dns.TypeTXT, dns.TypeHTTPS, dns.TypeSVCB, dns.TypeCAA, dns.TypeDS, dns.TypeDNSKEY,
	dns.TypeNAPTR, dns.TypeANY, dns.TypeNULL, dns.TypeAXFR, dns.TypeIXFR,
}

// Rcodes with a label of their own; others count as "other".
var rcodeLabels = []int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeYXDomain, dns.RcodeYXRrset,
	dns.RcodeNXRrset, dns.RcodeNotAuth, dns.RcodeNotZone, dns.RcodeBadVers,
}

const (
	numTransports = int(resolver.QUIC) + 1
	numQtypes     = 20 // len(qtypeLabels) + other
	numRcodes     = 13 // len(rcodeLabels) + other
)

func qtypeIndex(t uint16) int {
	for i, v := range qtypeLabels {
		if v == t {
			return i
		}
	}
	return len(qtypeLabels)
}

func rcodeIndex(r int) int {
	for i, v := range rcodeLabels {
		if v == r {
			return i
		}
	}
	return len(rcodeLabels)
}

func transportIndex(t resolver.Transport) int {
	if int(t) < numTransports {
		return int(t)
	}
	return 0 // "unknown"
}

// Metrics are the query metrics every transport (Do53, DoT, DoH, DoQ) shares.
// A nil *Metrics is valid and records nothing. Methods are safe for
// concurrent use and cost an array lookup and an atomic add per query: label
// children are resolved once and cached.
type Metrics struct {
	queries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  *prometheus.CounterVec
	conns    *prometheus.GaugeVec
	ech      *prometheus.CounterVec
	panics   prometheus.Counter

	qc    [numTransports][numQtypes][numRcodes]atomic.Pointer[prometheus.Counter]
	hist  [numTransports]atomic.Pointer[prometheus.Observer]
	drops [numTransports][numDropReasons]atomic.Pointer[prometheus.Counter]
	echs  [numTransports]atomic.Pointer[prometheus.Counter]
}

// NewMetrics registers the transport metrics with reg; nil reg returns nil (no
// metrics). Several servers sharing one registry may each call NewMetrics:
// collectors already registered under the same names are reused, so their
// counts add up. A collector of the same name but another shape is a wiring
// bug; that metric is then kept but not exported.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		queries: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_queries_total", Help: "Queries answered, by transport, query type and response code.",
		}, []string{"transport", "qtype", "rcode"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lamina_query_duration_seconds",
			Help:    "Time from a query's arrival to its answer being ready, by transport.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"transport"})),
		dropped: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_dropped_queries_total", Help: "Queries given no answer, by transport and reason.",
		}, []string{"transport", "reason"})),
		conns: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lamina_tcp_connections", Help: "Open client stream connections (TCP, DoT), by transport.",
		}, []string{"transport"})),
		ech: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_ech_queries_total", Help: "Queries answered over TLS sessions where Encrypted Client Hello was accepted.",
		}, []string{"transport"})),
		panics: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lamina_panics_total", Help: "Handler panics recovered and answered SERVFAIL.",
		})),
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}

// Observe counts one answered query: its transport, type and response code,
// the time since it arrived, and whether ECH protected it. q.Msg may be nil
// (the wire fast path), hence qtype and rcode are passed.
func (m *Metrics) Observe(q *resolver.Query, qtype uint16, rcode int, took time.Duration) {
	if m == nil {
		return
	}
	t := transportIndex(q.Transport)
	p := &m.qc[t][qtypeIndex(qtype)][rcodeIndex(rcode)]
	c := p.Load()
	if c == nil {
		qt, rc := "other", "other"
		if i := qtypeIndex(qtype); i < len(qtypeLabels) {
			qt = dns.TypeToString[qtype]
		}
		if i := rcodeIndex(rcode); i < len(rcodeLabels) {
			rc = dns.RcodeToString[rcode]
		}
		v := m.queries.WithLabelValues(q.Transport.String(), qt, rc)
		c = &v
		p.Store(c)
	}
	(*c).Inc()
	h := m.hist[t].Load()
	if h == nil {
		v := m.duration.WithLabelValues(q.Transport.String())
		h = &v
		m.hist[t].Store(h)
	}
	(*h).Observe(took.Seconds())
	if q.TLS != nil && q.TLS.ECHAccepted {
		e := m.echs[t].Load()
		if e == nil {
			v := m.ech.WithLabelValues(q.Transport.String())
			e = &v
			m.echs[t].Store(e)
		}
		(*e).Inc()
	}
}

// Dropped counts a query that got no answer.
func (m *Metrics) Dropped(t resolver.Transport, r DropReason) {
	if m == nil || r >= numDropReasons {
		return
	}
	p := &m.drops[transportIndex(t)][r]
	c := p.Load()
	if c == nil {
		v := m.dropped.WithLabelValues(t.String(), r.String())
		c = &v
		p.Store(c)
	}
	(*c).Inc()
}

// ConnOpened and ConnClosed track open stream connections.
func (m *Metrics) ConnOpened(t resolver.Transport) {
	if m != nil {
		m.conns.WithLabelValues(t.String()).Inc()
	}
}

// ConnClosed pairs with ConnOpened.
func (m *Metrics) ConnClosed(t resolver.Transport) {
	if m != nil {
		m.conns.WithLabelValues(t.String()).Dec()
	}
}

// Panic counts a recovered handler panic.
func (m *Metrics) Panic() {
	if m != nil {
		m.panics.Inc()
	}
}
