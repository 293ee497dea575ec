package do53

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(reg), NewMetrics(reg) // two transports, one registry
	udp := &resolver.Query{Transport: resolver.UDP}
	tlsECH := &resolver.Query{Transport: resolver.TLS, TLS: &resolver.TLSInfo{ECHAccepted: true}}
	a.Observe(udp, dns.TypeA, dns.RcodeSuccess, time.Millisecond)
	b.Observe(udp, dns.TypeA, dns.RcodeSuccess, time.Millisecond)
	b.Observe(udp, 65000, 99, time.Millisecond) // unknown type and rcode
	a.Observe(tlsECH, dns.TypeHTTPS, dns.RcodeNameError, time.Millisecond)
	a.Dropped(resolver.QUIC, DropOverload)
	b.Panic()
	a.ConnOpened(resolver.TLS)

	tests := []struct {
		m    prometheus.Metric
		want float64
	}{
		{a.queries.WithLabelValues("udp", "A", "NOERROR"), 2},
		{a.queries.WithLabelValues("udp", "other", "other"), 1},
		{a.queries.WithLabelValues("tls", "HTTPS", "NXDOMAIN"), 1},
		{a.ech.WithLabelValues("tls"), 1},
		{b.dropped.WithLabelValues("quic", "overload"), 1},
		{a.panics, 1},
		{b.conns.WithLabelValues("tls"), 1},
	}
	for i, tt := range tests {
		if got := value(tt.m); got != tt.want {
			t.Errorf("metric %d = %v, want %v", i, got, tt.want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	if got := strings.Join(names, " "); got != "lamina_dropped_queries_total lamina_ech_queries_total lamina_panics_total lamina_queries_total lamina_query_duration_seconds lamina_tcp_connections" {
		t.Fatalf("registered: %s", got)
	}
}

func TestMetricsNilAndConflicts(t *testing.T) {
	var m *Metrics = NewMetrics(nil)
	if m != nil {
		t.Fatal("nil registerer gave metrics")
	}
	q := &resolver.Query{Transport: resolver.UDP}
	m.Observe(q, dns.TypeA, 0, 0)
	m.Dropped(resolver.UDP, DropPolicy)
	m.ConnOpened(resolver.TCP)
	m.ConnClosed(resolver.TCP)
	m.Panic()

	// A foreign collector under one of our names: no panic, the rest works.
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "lamina_panics_total", Help: "someone else's"}))
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "lamina_queries_total", Help: "wrong type"}))
	m = NewMetrics(reg)
	m.Observe(q, dns.TypeA, 0, 0)
	m.Panic()
	if got := value(m.queries.WithLabelValues("udp", "A", "NOERROR")); got != 1 {
		t.Fatalf("queries %v", got)
	}
}
