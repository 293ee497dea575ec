package ipsec_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

// BenchmarkIKETunnelDNS measures DNS-over-UDP round trips through a tunnel
// keyed by IKEv2 against strongSwan (kernel-libipsec) to NSD behind it, with
// 16 concurrent query loops: queries/s and p50/p99 latency. The strongSwan
// client → gateway path measured about 28k qps on this kind of machine
// (shared/reference/ipsec-interop.md §11).
func BenchmarkIKETunnelDNS(b *testing.B) {
	lab := iketest.Start(b, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := labIKE()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(b, 4500)}, cfg)
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	const workers = 16
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var lost atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr, 53).String())
			if err != nil {
				b.Error(err)
				return
			}
			defer u.Close()
			buf := make([]byte, 1500)
			local := make([]time.Duration, 0, b.N/workers+1)
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					break
				}
				id := uint16(i)
				t0 := time.Now()
				u.Write(iketest.DNSQuery(id, "www."+iketest.Zone))
				u.SetReadDeadline(t0.Add(time.Second))
				for {
					n, err := u.Read(buf)
					if err != nil {
						lost.Add(1)
						break
					}
					if n >= 2 && binary.BigEndian.Uint16(buf) == id {
						local = append(local, time.Since(t0))
						break
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no answers")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "qps")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lost.Load()), "lost")
}
