package upstream

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

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

// BenchmarkUnbound compares the transports against one real Unbound in the
// same run (cache-hot local data): the ratios to udp are what matter.
func BenchmarkUnbound(b *testing.B) {
	pki := newPKI(b)
	ub := startUnbound(b, pki, 30*time.Second)
	for _, tc := range []struct{ name, url string }{
		{"udp", ub.udp}, {"tcp", ub.tcp}, {"dot", ub.dot}, {"doh-h2", ub.doh},
	} {
		b.Run(tc.name, func(b *testing.B) {
			u, err := Parse(tc.url, pki.clientOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer u.Close()
			b.SetParallelism(8) // 16 exchanges in flight on 2 cores
			benchExchangeName(b, u, "www.test.")
		})
	}
	// The reference for UDP's fresh socket per query: one connected socket
	// per goroutine, reused, same packing and checks.
	b.Run("udp-reused-socket", func(b *testing.B) {
		addr := strings.TrimPrefix(ub.udp, "udp://")
		req := query("www.test.", dns.TypeA)
		req.SetEdns0(1232, false)
		b.SetParallelism(8)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.Dial("udp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			wbuf, rbuf := make([]byte, 512), make([]byte, maxMsgSize)
			for pb.Next() {
				id := randID()
				wire, _ := packQuery(req, id, 0, wbuf)
				c.SetDeadline(time.Now().Add(2 * time.Second))
				c.Write(wire)
				n, err := c.Read(rbuf)
				if err != nil {
					b.Error(err)
					return
				}
				if _, why := unpackResponse(req, rbuf[:n], id); why != "" {
					b.Error(why)
					return
				}
			}
		})
	})
}

// BenchmarkEncrypted runs the encrypted transports against the in-process
// servers (miekg/dns for DoT answers one query at a time per connection).
func BenchmarkEncrypted(b *testing.B) {
	pki := newPKI(b)
	for _, tr := range encryptedTransports {
		b.Run(tr.name, func(b *testing.B) {
			srv := startServer(b)
			u, err := Parse(tr.start(b, srv, pki), pki.clientOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer u.Close()
			b.SetParallelism(8)
			benchExchangeName(b, u, "www.example.")
		})
	}
}

func benchExchangeName(b *testing.B, u Upstream, name string) {
	req := query(name, dns.TypeA)
	req.SetEdns0(1232, false)
	if _, err := u.Exchange(context.Background(), req); err != nil { // connect outside the timing
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := u.Exchange(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
