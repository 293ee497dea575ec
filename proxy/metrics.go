package proxy

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts proxied connections; its methods are safe on a nil *Metrics.
type Metrics struct {
	conns  *prometheus.CounterVec
	act    prometheus.Gauge
	bytesC *prometheus.CounterVec
}

// NewMetrics registers the proxy's metrics with reg; a nil reg returns nil
// (no metrics). The listener label tells several proxy listeners apart.
func NewMetrics(reg prometheus.Registerer, listener string) (*Metrics, error) {
	if reg == nil {
		return nil, nil
	}
	l := prometheus.Labels{"listener": listener}
	m := &Metrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_proxy_connections_total", Help: "Proxy connections by outcome.", ConstLabels: l,
		}, []string{"result"}),
		act: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lamina_proxy_active_connections", Help: "Proxy connections open now.", ConstLabels: l,
		}),
		bytesC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lamina_proxy_bytes_total", Help: "Bytes relayed, by direction (out: client to destination).", ConstLabels: l,
		}, []string{"direction"}),
	}
	for _, c := range []prometheus.Collector{m.conns, m.act, m.bytesC} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) conn(result string) {
	if m != nil {
		m.conns.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) active(d float64) {
	if m != nil {
		m.act.Add(d)
	}
}

func (m *Metrics) bytes(dir string, n int) {
	if m != nil {
		m.bytesC.WithLabelValues(dir).Add(float64(n))
	}
}
