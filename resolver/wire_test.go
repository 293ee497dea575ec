package resolver

import (
	"bytes"
	"context"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cachedResolver returns a resolver whose memCache holds example.com A.
func cachedResolver(t testing.TB, cfg Config) (*Resolver, *memCache) {
	c := newMemCache()
	cfg.Cache = c
	if cfg.Routes == nil {
		cfg.Routes = []Route{{Zone: ".", Upstream: answering("u", "192.0.2.1")}}
	}
	r := mustNew(t, cfg)
	q := query("example.com.", dns.TypeA)
	c.Set(q.Msg, answerA(q.Msg, "192.0.2.1"))
	return r, c
}

func TestServeWireHit(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, _ := cachedResolver(t, Config{Registerer: reg})
	q := query("EXAMPLE.com.", dns.TypeA)
	q.Msg.Id = 0xbeef
	raw := pack(t, q.Msg)
	prefix := []byte{0, 0} // room a TCP transport keeps for the length
	out, ok := r.ServeWire(q, raw, prefix)
	if !ok {
		t.Fatal("fresh hit declined")
	}
	var m dns.Msg
	if err := m.Unpack(out[2:]); err != nil {
		t.Fatal(err)
	}
	if m.Id != 0xbeef || m.Question[0].Name != "EXAMPLE.com." || len(m.Answer) != 1 {
		t.Errorf("response %v", &m)
	}
	if n := counter(t, reg, "lamina_resolver_responses_total", map[string]string{"source": "cache", "rcode": "NOERROR"}); n != 1 {
		t.Errorf("responses{cache} = %v", n)
	}
}

// TestServeWireDeclines checks every reason to decline, and that declining
// has no side effects: dst is returned as given and the query can still be
// served by ServeDNS.
func TestServeWireDeclines(t *testing.T) {
	local := homeZone(t)
	r, _ := cachedResolver(t, Config{LocalZones: local, RefuseAny: true})
	tests := []struct {
		name string
		q    *Query
		raw  func([]byte) []byte
	}{
		{"miss", query("other.example.", dns.TypeA), nil},
		{"acl", from(query("example.com.", dns.TypeA), "8.8.8.8"), nil},
		{"local zone", query("NAS.HOME.arpa.", dns.TypeA), nil},
		{"local zone apex", query("home.arpa.", dns.TypeSOA), nil},
		{"localhost", query("x.LOCALHOST.", dns.TypeA), nil},
		{"resolver.arpa", query("_dns.resolver.arpa.", dns.TypeSVCB), nil},
		{"private reverse", query("1.0.168.192.in-addr.arpa.", dns.TypePTR), nil},
		{"any", query("example.com.", dns.TypeANY), nil},
		{"not a query", query("example.com.", dns.TypeA), func(b []byte) []byte { b[2] |= 0x80; return b }},
		{"opcode", query("example.com.", dns.TypeA), func(b []byte) []byte { b[2] |= 2 << 3; return b }},
		{"edns version", query("example.com.", dns.TypeA), func(b []byte) []byte { b[len(b)-5] = 1; return b }},
		{"chaos", query("example.com.", dns.TypeA), func(b []byte) []byte { b[len(b)-12] = 3; return b }},
		{"truncated", query("example.com.", dns.TypeA), func(b []byte) []byte { return b[:20] }},
		{"pointer", query("example.com.", dns.TypeA), func(b []byte) []byte { b[12] = 0xc0; b[13] = 12; return b }},
	}
	for _, tt := range tests {
		raw := pack(t, tt.q.Msg)
		if tt.raw != nil {
			raw = tt.raw(raw)
		}
		dst := make([]byte, 3, 512)
		out, ok := r.ServeWire(tt.q, raw, dst)
		if ok || len(out) != 3 {
			t.Errorf("%s: ok=%v len=%d, want a decline with dst untouched", tt.name, ok, len(out))
		}
	}
	if r.cache.(*memCache) == nil {
		t.Fatal("no cache")
	}
}

func TestServeWireNoCache(t *testing.T) {
	r := mustNew(t, Config{})
	q := query("example.com.", dns.TypeA)
	if _, ok := r.ServeWire(q, pack(t, q.Msg), nil); ok {
		t.Fatal("answered without a cache")
	}
}

// The rate limit token of a declined query is taken by ServeDNS, once; a
// limited client is declined so that ServeDNS refuses it.
func TestServeWireRateLimitOnce(t *testing.T) {
	r, _ := cachedResolver(t, Config{RateLimit: RateLimit{QPS: 1e-9, Burst: 2}})
	miss := query("other.example.", dns.TypeA)
	if _, ok := r.ServeWire(miss, pack(t, miss.Msg), nil); ok {
		t.Fatal("miss answered")
	}
	if m := serve(t, r, miss); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("first query: %s", dns.RcodeToString[m.Rcode])
	}
	hit := query("example.com.", dns.TypeA)
	if _, ok := r.ServeWire(hit, pack(t, hit.Msg), nil); !ok {
		t.Fatal("second query (a hit within the burst) declined")
	}
	if _, ok := r.ServeWire(hit, pack(t, hit.Msg), nil); ok {
		t.Fatal("third query answered over the limit")
	}
	if m := serve(t, r, hit); m.Rcode != dns.RcodeRefused {
		t.Fatalf("third query through ServeDNS: %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
}

func TestServeWireAllocs(t *testing.T) {
	r, _ := cachedResolver(t, Config{
		RateLimit:  RateLimit{QPS: 1e12, Burst: 1e9},
		Registerer: prometheus.NewRegistry(),
		LocalZones: homeZone(t),
	})
	q := query("example.com.", dns.TypeA)
	raw := pack(t, q.Msg)
	dst := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := r.ServeWire(q, raw, dst); !ok {
			t.Fatal("declined")
		}
	})
	if allocs > 0 {
		t.Errorf("ServeWire hit allocates %v times, want 0 with an allocation-free cache", allocs)
	}
}

func TestServeDNSFromCache(t *testing.T) {
	r, _ := cachedResolver(t, Config{Routes: []Route{{Zone: ".", Upstream: failing(t)}}})
	q := query("Example.Com.", dns.TypeA)
	q.Msg.Id = 7
	m := serve(t, r, q)
	if m.Id != 7 || len(m.Answer) != 1 {
		t.Fatalf("cached answer %v", m)
	}
}

func FuzzParseQuestion(f *testing.F) {
	for _, name := range []string{"example.com.", "A.b.C.", ".", "_dns.resolver.arpa."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		f.Add(b)
		m.SetEdns0(1232, true)
		b, _ = m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var name [256]byte
		var offs [128]uint8
		n, k, qtype, ok := parseQuestion(raw, &name, &offs)
		if !ok {
			return
		}
		var m dns.Msg
		if err := m.Unpack(raw); err != nil {
			// Unpack is stricter about the OPT record's rdata; the question
			// must still be what miekg/dns reads.
			return
		}
		if len(m.Question) != 1 || m.Question[0].Qtype != qtype || m.Question[0].Qclass != dns.ClassINET {
			t.Fatalf("parsed %d, miekg/dns %v", qtype, m.Question)
		}
		want := make([]byte, 256)
		wn, err := dns.PackDomainName(dns.CanonicalName(m.Question[0].Name), want, 0, nil, false)
		if err != nil || !bytes.Equal(name[:n], want[:wn]) {
			t.Fatalf("name %q, miekg/dns %q (%v)", name[:n], want[:wn], err)
		}
		if k != dns.CountLabel(m.Question[0].Name) {
			t.Fatalf("%d labels, want %d", k, dns.CountLabel(m.Question[0].Name))
		}
	})
}

func BenchmarkServeWireHit(b *testing.B) {
	r, _ := cachedResolver(b, Config{RateLimit: RateLimit{QPS: 1e12, Burst: 1e9}, Registerer: prometheus.NewRegistry()})
	q := query("example.com.", dns.TypeA)
	raw := pack(b, q.Msg)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.ServeWire(q, raw, dst); !ok {
			b.Fatal("declined")
		}
	}
}

func BenchmarkServeDNSHit(b *testing.B) {
	r, _ := cachedResolver(b, Config{RateLimit: RateLimit{QPS: 1e12, Burst: 1e9}, Registerer: prometheus.NewRegistry()})
	q := query("example.com.", dns.TypeA)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if m, err := r.ServeDNS(ctx, q); err != nil || len(m.Answer) != 1 {
			b.Fatal(m, err)
		}
	}
}

// BenchmarkServeDNSHitDecoded is the slow path without the cost of the
// test cache's pack/unpack: the cache returns a ready message copy.
func BenchmarkServeDNSHitDecoded(b *testing.B) {
	q := query("example.com.", dns.TypeA)
	cached := answerA(q.Msg, "192.0.2.1")
	c := &fakeCache{OnGet: func(*dns.Msg, bool) (*dns.Msg, Freshness) { return cached.Copy(), Fresh }}
	r := mustNew(b, Config{Cache: c, RateLimit: RateLimit{QPS: 1e12, Burst: 1e9}, Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if m, err := r.ServeDNS(ctx, q); err != nil || len(m.Answer) != 1 {
			b.Fatal(m, err)
		}
	}
}

// TestServeWireLeavesSelfNames: a cached public answer for a name Lamina
// publishes records about (a shared cache, a reload that added a service
// name) is not served by the fast path; ServeDNS answers from the self
// records.
func TestServeWireLeavesSelfNames(t *testing.T) {
	self := []dns.RR{mustRR(t, "Example.COM. 300 IN HTTPS 1 . alpn=h2")}
	r, _ := cachedResolver(t, Config{SelfRecords: func() []dns.RR { return self }})
	q := query("example.com.", dns.TypeA) // cached by cachedResolver
	if _, ok := r.ServeWire(q, pack(t, q.Msg), nil); ok {
		t.Fatal("fast path answered a self-record owner from the cache")
	}
	q = query("example.com.", dns.TypeHTTPS)
	if m := serve(t, r, q); len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeHTTPS || !m.Authoritative {
		t.Errorf("ServeDNS: %v", m)
	}
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestServeWireAD: the fast path clears a cached AD bit for a client that set
// neither AD nor DO, as the slow path does (RFC 6840 §5.8).
func TestServeWireAD(t *testing.T) {
	c := newMemCache()
	r := mustNew(t, Config{Cache: c, Routes: []Route{{Zone: ".", Upstream: failing(t)}}})
	seed := query("example.com.", dns.TypeA)
	resp := answerA(seed.Msg, "192.0.2.1")
	resp.AuthenticatedData = true
	c.Set(seed.Msg, resp)
	for _, tt := range []struct{ ad, do, want bool }{
		{false, false, false}, {true, false, true}, {false, true, true},
	} {
		q := query("example.com.", dns.TypeA)
		q.Msg.AuthenticatedData = tt.ad
		q.Msg.IsEdns0().SetDo(tt.do)
		out, ok := r.ServeWire(q, pack(t, q.Msg), nil)
		if !ok {
			t.Fatal("fresh hit declined")
		}
		if got := out[3]&0x20 != 0; got != tt.want {
			t.Errorf("AD=%v DO=%v: response AD %v, want %v", tt.ad, tt.do, got, tt.want)
		}
	}
}
