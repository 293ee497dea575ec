package ipsec_test

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec"
	"github.com/laminadns/lamina/ipsec/ike"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
	"github.com/laminadns/lamina/ipsec/internal/dnstest"
)

// TestESPSuitesAgainstStrongSwan carries DNS through each ESP suite against
// strongSwan's userspace ESP (kernel-libipsec): the gateway insists on one
// suite, IKE negotiates it, and every packet both ways must authenticate.
func TestESPSuitesAgainstStrongSwan(t *testing.T) {
	for _, c := range []struct{ proposal, suite string }{
		{"chacha20poly1305", "chacha20poly1305"},
		{"aes256-sha256", "aes256-sha256"},
		{"aes128-sha256", "aes128-sha256"},
		{"aes256gcm16", "aes256gcm16"},
	} {
		t.Run(c.proposal, func(t *testing.T) {
			lab := iketest.Start(t, iketest.Gateway{
				Proposals:    "aes128gcm16-prfsha256-x25519",
				ESPProposals: c.proposal,
				PSK:          "interop-psk-0123456789",
				LocalID:      "gw.example",
				RemoteID:     "resolver.example",
				Pool:         true,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, ike.Config{
				Local:      ike.FQDN("resolver.example"),
				Remote:     ike.FQDN("gw.example"),
				PSK:        []byte("interop-psk-0123456789"),
				RemoteNets: []netip.Prefix{iketest.Internal},
			})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer tun.Close()
			server := netip.AddrPortFrom(iketest.DNSAddr, 53).String()
			u, err := tun.DialContext(ctx, "udp", server)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			for i := range 100 {
				q := dnstest.Query(uint16(i), "www."+iketest.Zone, dnstest.TypeA)
				r, err := dnstest.Exchange(u, q, 5*time.Second)
				if err != nil {
					t.Fatalf("UDP query %d: %v", i, err)
				}
				if a, err := dnstest.Parse(r); err != nil || len(a.Addrs) != 1 || a.Addrs[0] != netip.MustParseAddr("192.0.2.80") {
					t.Fatalf("UDP answer %d: %+v %v", i, a, err)
				}
			}
			c2, err := tun.DialContext(ctx, "tcp", server)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			for i := range 20 {
				r, err := dnstest.ExchangeStream(c2, dnstest.Query(uint16(i), "www."+iketest.Zone, dnstest.TypeA), 5*time.Second)
				if err != nil {
					t.Fatalf("TCP query %d: %v", i, err)
				}
				if a, err := dnstest.Parse(r); err != nil || len(a.Addrs) != 1 {
					t.Fatalf("TCP answer %d: %+v %v", i, a, err)
				}
			}
			st := tun.Stats()
			if len(st.SAs) != 2 || st.SAs[0].Suite != c.suite || st.SAs[1].Suite != c.suite {
				t.Fatalf("SAs %+v, want suite %s", st.SAs, c.suite)
			}
			if st.In.AuthFailures+st.In.PadErrors+st.In.DecryptErrors+st.In.ReplayDrops+st.UnknownSPI != 0 || st.In.Packets < 120 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// BenchmarkStrongSwanQPS runs 16 concurrent UDP clients querying NSD behind
// a strongSwan (kernel-libipsec) gateway through the tunnel, AES-128-GCM,
// and reports answered queries per second.
func BenchmarkStrongSwanQPS(b *testing.B) {
	lab := iketest.Start(b, iketest.Gateway{
		Proposals: "aes128gcm16-prfsha256-x25519", ESPProposals: "aes128gcm16",
		PSK: "interop-psk-0123456789", LocalID: "gw.example", RemoteID: "resolver.example", Pool: true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(b, 4500)}, ike.Config{
		Local: ike.FQDN("resolver.example"), Remote: ike.FQDN("gw.example"),
		PSK: []byte("interop-psk-0123456789"), RemoteNets: []netip.Prefix{iketest.Internal},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer tun.Close()
	const clients = 16
	per := b.N/clients + 1
	var lost atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr, 53).String())
			if err != nil {
				b.Error(err)
				return
			}
			defer u.Close()
			for i := range per {
				q := dnstest.Query(uint16(w<<11|i&0x7ff), "www."+iketest.Zone, dnstest.TypeA)
				if _, err := dnstest.Exchange(u, q, time.Second); err != nil {
					lost.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(clients*per-int(lost.Load()))/time.Since(start).Seconds(), "qps")
	b.ReportMetric(float64(lost.Load()), "lost")
}
