package upstream

import (
	"context"
	"errors"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the upstream counters, registered once per registry and shared
// by every upstream and group built from one configuration. A nil *Metrics
// records nothing, so tests and library users may leave it out.
//
// The upstream label is the upstream's URL from the configuration, so label
// cardinality is bounded by the configuration, never by traffic.
type Metrics struct {
	exchanges *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	up        *prometheus.GaugeVec
	dropped   *prometheus.CounterVec
	conns     *prometheus.CounterVec
}

// NewMetrics creates the upstream metrics and registers them on reg. A nil
// reg returns nil (no metrics). Registering twice on one registry panics, as
// with any duplicate Prometheus collector: build one Metrics per registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_upstream_exchanges_total",
			Help: "Exchanges with an upstream by result: ok, servfail, refused, timeout, error, canceled.",
		}, []string{"upstream", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lamina_upstream_duration_seconds",
			Help:    "Time from sending a query to an upstream to its answer, for answered exchanges.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"upstream"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lamina_upstream_up",
			Help: "1 while a group considers the upstream healthy, 0 while it is marked down.",
		}, []string{"upstream"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_upstream_dropped_responses_total",
			Help: "Messages from an upstream that were not accepted as an answer, by reason.",
		}, []string{"upstream", "reason"}),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_upstream_connections_total",
			Help: "Connections opened to an upstream; ech says whether TLS Encrypted Client Hello was accepted.",
		}, []string{"upstream", "ech"}),
	}
	reg.MustRegister(m.exchanges, m.duration, m.up, m.dropped, m.conns)
	return m
}

// upstreamMetrics is the per-upstream view, with the label values bound once
// at construction so the hot path does no map lookups. Nil-safe.
type upstreamMetrics struct {
	m        *Metrics
	name     string
	ok       prometheus.Counter
	servfail prometheus.Counter
	refused  prometheus.Counter
	timeout  prometheus.Counter
	failed   prometheus.Counter
	canceled prometheus.Counter
	duration prometheus.Observer
}

func (m *Metrics) forUpstream(name string) *upstreamMetrics {
	if m == nil {
		return nil
	}
	return &upstreamMetrics{
		m:        m,
		name:     name,
		ok:       m.exchanges.WithLabelValues(name, "ok"),
		servfail: m.exchanges.WithLabelValues(name, "servfail"),
		refused:  m.exchanges.WithLabelValues(name, "refused"),
		timeout:  m.exchanges.WithLabelValues(name, "timeout"),
		failed:   m.exchanges.WithLabelValues(name, "error"),
		canceled: m.exchanges.WithLabelValues(name, "canceled"),
		duration: m.duration.WithLabelValues(name),
	}
}

// exchange records the outcome of one Exchange that started at start.
func (um *upstreamMetrics) exchange(start time.Time, resp *dns.Msg, err error) {
	if um == nil {
		return
	}
	switch {
	case err == nil:
		um.duration.Observe(time.Since(start).Seconds())
		switch resp.Rcode {
		case dns.RcodeServerFailure:
			um.servfail.Inc()
		case dns.RcodeRefused:
			um.refused.Inc()
		default:
			um.ok.Inc()
		}
	case errors.Is(err, context.Canceled):
		um.canceled.Inc()
	case isTimeout(err):
		um.timeout.Inc()
	default:
		um.failed.Inc()
	}
}

func (um *upstreamMetrics) drop(why dropReason) {
	if um == nil {
		return
	}
	um.m.dropped.WithLabelValues(um.name, string(why)).Inc()
}

func (um *upstreamMetrics) setUp(up bool) {
	if um == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	um.m.up.WithLabelValues(um.name).Set(v)
}

func (um *upstreamMetrics) conn(ech bool) {
	if um == nil {
		return
	}
	v := "false"
	if ech {
		v = "true"
	}
	um.m.conns.WithLabelValues(um.name, v).Inc()
}
