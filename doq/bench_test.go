package doq

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// BenchmarkDoQ measures queries per second over one DoQ connection with
// parallel streams (no Debian load generator speaks DoQ):
//
//	go test ./doq -run '^$' -bench DoQ -benchmem
func BenchmarkDoQ(b *testing.B) {
	e := start(b, false, Config{MaxStreams: 1000})
	c := e.mustDial(b, nil)
	raw := mustPack(query(tlsconftest.SiteName, dns.TypeA))
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := exchange(c, raw); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
}
