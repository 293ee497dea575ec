package ipsec_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/ipsec"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

// load runs `workers` query loops (one query in flight each) through tun
// until n queries were answered or lost, and returns queries/s, p50, p99
// and the number lost.
func load(tb testing.TB, ctx context.Context, tun *ipsec.IKETunnel, workers int, n int64) (qps float64, p50, p99 time.Duration, lost int64) {
	var next, lostN atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr, 53).String())
			if err != nil {
				tb.Error(err)
				return
			}
			defer u.Close()
			buf := make([]byte, 1500)
			var local []time.Duration
			for {
				i := next.Add(1)
				if i > n {
					break
				}
				id := uint16(i)
				t0 := time.Now()
				u.Write(iketest.DNSQuery(id, "www."+iketest.Zone))
				u.SetReadDeadline(t0.Add(time.Second))
				for {
					m, err := u.Read(buf)
					if err != nil {
						lostN.Add(1)
						break
					}
					if m >= 2 && binary.BigEndian.Uint16(buf) == id {
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
	if len(lat) == 0 {
		tb.Fatal("no answers")
	}
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], lostN.Load()
}

// BenchmarkIKETunnelDNS measures DNS-over-UDP round trips through a tunnel
// keyed by IKEv2 against strongSwan (kernel-libipsec) to NSD behind it,
// with 16 query loops: queries/s and p50/p99 latency.
func BenchmarkIKETunnelDNS(b *testing.B) {
	lab := iketest.Start(b, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(b, 4500)}, labIKE())
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	b.ResetTimer()
	qps, p50, p99, lost := load(b, ctx, tun, 16, int64(b.N))
	b.StopTimer()
	b.ReportMetric(qps, "qps")
	b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(lost), "lost")
}

// BenchmarkIKETunnelVsStrongSwan runs, in the same lab and the same run,
// dnsperf (16 queries outstanding, 5 s) from a namespace whose traffic goes
// through a strongSwan client (kernel-libipsec) and Lamina's tunnel with 16
// query loops, both to NSD behind the same gateway, and reports the ratio.
func BenchmarkIKETunnelVsStrongSwan(b *testing.B) {
	dnsperf := testenv.Tool(b, "dnsperf")
	ip := testenv.Tool(b, "ip")
	g := labGateway()
	g.SecondClient = true
	lab := iketest.Start(b, g)
	ns := lab.StrongSwanClient(b, g)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(b, 4500)}, labIKE())
	if err != nil {
		b.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	data := filepath.Join(b.TempDir(), "queries")
	os.WriteFile(data, []byte("www."+iketest.Zone+" A\n"), 0o600)
	for i := 0; i < b.N; i++ {
		out, err := exec.CommandContext(ctx, ip, "netns", "exec", ns, dnsperf, "-s", iketest.DNSAddr.String(),
			"-d", data, "-c", "16", "-q", "16", "-l", "5").CombinedOutput()
		if err != nil {
			b.Fatalf("dnsperf: %v\n%s", err, out)
		}
		ssQPS := grabFloat(b, `Queries per second:\s+([0-9.]+)`, out)
		ssLat := grabFloat(b, `Average Latency \(s\):\s+([0-9.]+)`, out)
		ssLost := grabFloat(b, `Queries lost:\s+([0-9]+)`, out)
		n := int64(ssQPS * 5)
		qps, p50, p99, lost := load(b, ctx, tun, 16, max(n, 10000))
		b.ReportMetric(ssQPS, "strongswan-qps")
		b.ReportMetric(ssLat*1e6, "strongswan-avg-µs")
		b.ReportMetric(ssLost, "strongswan-lost")
		b.ReportMetric(qps, "lamina-qps")
		b.ReportMetric(float64(p50.Microseconds()), "lamina-p50-µs")
		b.ReportMetric(float64(p99.Microseconds()), "lamina-p99-µs")
		b.ReportMetric(float64(lost), "lamina-lost")
		b.ReportMetric(qps/ssQPS, "ratio")
	}
}

func grabFloat(tb testing.TB, re string, out []byte) float64 {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		tb.Fatalf("no %q in dnsperf output:\n%s", re, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
