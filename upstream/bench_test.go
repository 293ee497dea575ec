package upstream

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// The benchmarks run each Lamina transport and miekg/dns's own client (the
// peer) against the same in-process server in the same run; compare ratios,
// not absolute numbers.

func benchExchange(b *testing.B, u Upstream) {
	req := query("www.example.", dns.TypeA)
	req.SetEdns0(1232, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := u.Exchange(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUDPExchange(b *testing.B) {
	srv := startServer(b)
	u := NewUDP(srv.addr, Options{})
	defer u.Close()
	benchExchange(b, u)
}

func BenchmarkTCPExchange(b *testing.B) {
	srv := startServer(b)
	u := NewTCP(srv.addr, Options{})
	defer u.Close()
	benchExchange(b, u)
}

// BenchmarkPeerMiekgUDP is miekg/dns's client: a fresh socket per query too.
func BenchmarkPeerMiekgUDP(b *testing.B) {
	srv := startServer(b)
	c := &dns.Client{Net: "udp"}
	benchClient(b, c, srv.addr.String())
}

// BenchmarkPeerMiekgTCP is miekg/dns's client: a fresh connection per query.
func BenchmarkPeerMiekgTCP(b *testing.B) {
	srv := startServer(b)
	c := &dns.Client{Net: "tcp"}
	benchClient(b, c, srv.addr.String())
}

func benchClient(b *testing.B, c *dns.Client, addr string) {
	req := query("www.example.", dns.TypeA)
	req.SetEdns0(1232, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.Exchange(req.Copy(), addr); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUDPSocket measures what a fresh socket per try costs against a
// reused one: the choice behind UDP's random source ports.
func BenchmarkUDPSocket(b *testing.B) {
	srv := startServer(b)
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			c, err := System().DialContext(context.Background(), "udp", srv.addr.String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("exchange-reused", func(b *testing.B) {
		c, err := net.Dial("udp", srv.addr.String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		wire, _ := query("www.example.", dns.TypeA).Pack()
		buf := make([]byte, 1500)
		for b.Loop() {
			c.Write(wire)
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
