package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/resolver"
)

// benchGeneration builds a generation whose only route forwards to an
// in-process server, and primes the cache with www.bench.test.
func benchGeneration(b *testing.B) (*generation, *resolver.Query, []byte) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(10, 0, 0, 1)})
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	b.Cleanup(func() { srv.Shutdown() })
	c, err := config.Parse("bench.yaml", []byte(fmt.Sprintf(`
listeners: [{url: "udp://127.0.0.1:1"}]
upstream_groups: [{name: g, upstreams: ["udp://%s"]}]
routes: [{zone: ., group: g}]
`, pc.LocalAddr())))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		b.Fatal(err)
	}
	g, err := build(c, &shared{log: slog.New(slog.DiscardHandler)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.close(nil) })
	m := new(dns.Msg)
	m.SetQuestion("www.bench.test.", dns.TypeA)
	q := &resolver.Query{Msg: m, Client: netip.MustParseAddrPort("127.0.0.1:5353"), Transport: resolver.UDP, Listener: "udp://127.0.0.1:1", MaxSize: 1232}
	if _, err := g.res.ServeDNS(context.Background(), q); err != nil {
		b.Fatal(err)
	}
	raw, _ := m.Pack()
	q.Msg = nil
	return g, q, raw
}

// BenchmarkWireHit compares a cache hit through the reload wrapper with the
// same hit on the resolver directly: the wrapper costs one atomic load.
func BenchmarkWireHit(b *testing.B) {
	g, q, raw := benchGeneration(b)
	var h swapHandler
	h.swap(g)
	dst := make([]byte, 0, 512)
	for _, c := range []struct {
		name string
		wh   resolver.WireHandler
	}{{"resolver", g.res}, {"swap", &h}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, ok := c.wh.ServeWire(q, raw, dst[:0])
				if !ok || len(out) < 12 {
					b.Fatal("not answered from the cache")
				}
			}
		})
	}
}
