package h2

import (
	"net/http"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/do53"
)

// TestMetrics: answers from the fast path and from workers are counted
// under transport "https", and so is the open connection.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := start(t, Config{Metrics: do53.NewMetrics(reg)})
	c := e.client(t)
	for range 3 { // a miss, then two fast-path hits
		resp, body := doReq(t, c, http.MethodGet, getURL(e.url, query("h5.bench.test.", dns.TypeA)), "", nil)
		answerOf(t, resp, body)
	}
	if e.h.wire.Load() != 2 {
		t.Fatalf("fast path answered %d", e.h.wire.Load())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var queries, conns float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			https := false
			for _, l := range m.GetLabel() {
				https = https || l.GetName() == "transport" && l.GetValue() == "https"
			}
			switch {
			case !https:
			case mf.GetName() == "lamina_queries_total":
				queries += m.GetCounter().GetValue()
			case mf.GetName() == "lamina_tcp_connections":
				conns += m.GetGauge().GetValue()
			}
		}
	}
	if queries != 3 || conns != 1 {
		t.Errorf("queries %v, connections %v; want 3 and 1", queries, conns)
	}
}
