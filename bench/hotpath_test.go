package bench

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/cache"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

// hitNames is the size of the cached set, as in bench/run's dnsperf file.
const hitNames = 1000

// hitPath is a resolver with the real cache, metrics registered (as the
// binary runs it), and hitNames answers cached through the normal miss path.
type hitPath struct {
	r    *resolver.Resolver
	up   *answerUpstream
	raws [][]byte          // packed queries, as a UDP listener receives them
	qs   []*resolver.Query // decoded queries, as ServeDNS receives them
}

func newHitPath(tb testing.TB) *hitPath {
	tb.Helper()
	c, err := cache.New(cache.Config{MaxEntries: 100_000})
	if err != nil {
		tb.Fatal(err)
	}
	h := &hitPath{up: &answerUpstream{}}
	h.r, err = resolver.New(resolver.Config{
		Routes:     []resolver.Route{{Zone: "bench.test.", Upstream: h.up}},
		Cache:      c,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.r.Close(); c.Close() })
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	local := netip.MustParseAddrPort("127.0.0.1:53")
	for i := range hitNames {
		m := new(dns.Msg)
		m.SetQuestion(benchName(i), dns.TypeA)
		m.Id = uint16(i)
		raw, err := m.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		q := &resolver.Query{Msg: m, Client: client, Local: local, Transport: resolver.UDP,
			Listener: "udp://127.0.0.1:53", MaxSize: 1232}
		if resp, err := h.r.ServeDNS(context.Background(), q); err != nil || len(resp.Answer) != 1 {
			tb.Fatalf("filling %s: %v %v", benchName(i), resp, err)
		}
		h.raws = append(h.raws, raw)
		h.qs = append(h.qs, q)
	}
	if n := h.up.exchanges.Load(); n != hitNames {
		tb.Fatalf("%d upstream exchanges filling %d names", n, hitNames)
	}
	return h
}

// wireQuery is the Query a UDP listener hands to ServeWire (Msg is nil).
func (h *hitPath) wireQuery(i int) *resolver.Query {
	q := *h.qs[i]
	q.Msg = nil
	return &q
}

// checkNoMiss fails the benchmark if any query went upstream while timed.
func (h *hitPath) checkNoMiss(tb testing.TB) {
	if n := h.up.exchanges.Load(); n != hitNames {
		tb.Fatalf("%d upstream exchanges during the benchmark: not all hits", n-hitNames)
	}
}

// BenchmarkResolverHitWire is the UDP/TCP listeners' fast path: packed query
// in, packed answer appended to a reused buffer.
func BenchmarkResolverHitWire(b *testing.B) {
	h := newHitPath(b)
	qs := make([]*resolver.Query, hitNames)
	for i := range qs {
		qs[i] = h.wireQuery(i)
	}
	dst := make([]byte, 0, 1232)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % hitNames
		out, ok := h.r.ServeWire(qs[k], h.raws[k], dst[:0])
		if !ok || len(out) < 12 || out[0] != h.raws[k][0] || out[1] != h.raws[k][1] {
			b.Fatalf("query %d: declined or wrong ID (ok=%v, %d bytes)", k, ok, len(out))
		}
		i++
	}
	h.checkNoMiss(b)
}

func BenchmarkResolverHitWireParallel(b *testing.B) {
	h := newHitPath(b)
	qs := make([]*resolver.Query, hitNames)
	for i := range qs {
		qs[i] = h.wireQuery(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 1232)
		i := 0
		for pb.Next() {
			k := i % hitNames
			if _, ok := h.r.ServeWire(qs[k], h.raws[k], dst[:0]); !ok {
				panic("declined")
			}
			i++
		}
	})
	h.checkNoMiss(b)
}

// BenchmarkResolverHitServeDNS is the decoded path every other transport
// (and a declined fast path) takes: ServeDNS on a decoded query.
func BenchmarkResolverHitServeDNS(b *testing.B) {
	h := newHitPath(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % hitNames
		resp, err := h.r.ServeDNS(ctx, h.qs[k])
		if err != nil || len(resp.Answer) != 1 {
			b.Fatalf("query %d: %v %v", k, resp, err)
		}
		i++
	}
	h.checkNoMiss(b)
}

// BenchmarkResolverHitServeDNSPacked adds what a transport then does with the
// message: set the ID and pack it into a reused buffer.
func BenchmarkResolverHitServeDNSPacked(b *testing.B) {
	h := newHitPath(b)
	ctx := context.Background()
	buf := make([]byte, 1232)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % hitNames
		resp, err := h.r.ServeDNS(ctx, h.qs[k])
		if err != nil {
			b.Fatal(err)
		}
		resp.Id = h.qs[k].Msg.Id
		if _, err := resp.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
		i++
	}
	h.checkNoMiss(b)
}

// TestResolverHitAllocs holds the wire fast path to issue 3's budget of at
// most 2 allocations per cache hit. Allocation counts are deterministic, so
// this is a test, not only a benchmark; ServeDNS is reported, not enforced.
func TestResolverHitAllocs(t *testing.T) {
	h := newHitPath(t)
	qs := make([]*resolver.Query, hitNames)
	for i := range qs {
		qs[i] = h.wireQuery(i)
	}
	dst := make([]byte, 0, 1232)
	i := 0
	wire := testing.AllocsPerRun(2000, func() {
		k := i % hitNames
		if _, ok := h.r.ServeWire(qs[k], h.raws[k], dst[:0]); !ok {
			t.Fatalf("query %d declined", k)
		}
		i++
	})
	ctx := context.Background()
	decoded := testing.AllocsPerRun(2000, func() {
		k := i % hitNames
		if _, err := h.r.ServeDNS(ctx, h.qs[k]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	h.checkNoMiss(t)
	t.Logf("allocs per cache hit: ServeWire %.1f, ServeDNS %.1f (budget 2)", wire, decoded)
	if wire > 2 {
		t.Errorf("ServeWire: %.1f allocations per cache hit, budget 2", wire)
	}
}

// BenchmarkResolverHitPaddedDoH is a browser's cache hit: a DoH query with
// an RFC 8467 Padding option (Chromium and Firefox pad theirs) through
// do53.Responder, the DoH and DoQ listeners' entry, with the real resolver
// and cache. The answer must come back padded to 468 bytes.
func BenchmarkResolverHitPaddedDoH(b *testing.B) {
	h := newHitPath(b)
	rsp, err := do53.NewResponder(do53.Config{Handler: h.r})
	if err != nil {
		b.Fatal(err)
	}
	raws := make([][]byte, hitNames)
	for i := range raws {
		m := h.qs[i].Msg.Copy()
		m.Id = 0 // as DoH GET sends it
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 128-m.Len()-4)})
		if raws[i], err = m.Pack(); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % hitNames
		q := &resolver.Query{Client: h.qs[k].Client, Transport: resolver.HTTPS, Listener: "doh"}
		out, err := rsp.Respond(ctx, q, raws[k], buf)
		if err != nil || len(out) != 468 {
			b.Fatalf("query %d: %d bytes, %v", k, len(out), err)
		}
		i++
	}
	h.checkNoMiss(b)
}
