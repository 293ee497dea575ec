package resolver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRouting(t *testing.T) {
	corp, deep, def := answering("corp", "10.0.0.1"), answering("deep", "10.0.0.2"), answering("default", "192.0.2.1")
	r := mustNew(t, Config{Routes: []Route{
		{Zone: "corp.example", Upstream: corp},
		{Zone: "a.corp.example.", Upstream: deep},
		{Zone: ".", Upstream: def},
	}})
	tests := []struct{ name, want string }{
		{"www.corp.example.", "10.0.0.1"},
		{"corp.example.", "10.0.0.1"},
		{"WWW.CoRp.EXAMPLE.", "10.0.0.1"},
		{"xcorp.example.", "192.0.2.1"},
		{"corp.example.com.", "192.0.2.1"},
		{"a.corp.example.", "10.0.0.2"},
		{"x.A.corp.example.", "10.0.0.2"},
		{"xa.corp.example.", "10.0.0.1"},
		{"example.com.", "192.0.2.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := serve(t, r, query(tt.name, dns.TypeA))
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != tt.want {
				t.Fatalf("answer %v, want %s", m.Answer, tt.want)
			}
			if m.Answer[0].Header().Name != tt.name {
				t.Errorf("owner %q, want the client's case %q", m.Answer[0].Header().Name, tt.name)
			}
		})
	}
}

func TestNoRoute(t *testing.T) {
	r := mustNew(t, Config{Routes: []Route{{Zone: "corp.example.", Upstream: answering("corp", "10.0.0.1")}}})
	m := serve(t, r, query("example.com.", dns.TypeA))
	if code, _ := ede(m); m.Rcode != dns.RcodeRefused || code != dns.ExtendedErrorCodeNotAuthoritative {
		t.Fatalf("rcode %s EDE %d, want REFUSED with EDE 20", dns.RcodeToString[m.Rcode], code)
	}
}

func TestConfigErrors(t *testing.T) {
	up := answering("u", "192.0.2.1")
	rr, _ := dns.NewRR("www.other.example. 60 IN A 192.0.2.9")
	cname, _ := dns.NewRR("x.home.arpa. 60 IN CNAME y.home.arpa.")
	txt, _ := dns.NewRR("x.home.arpa. 60 IN TXT \"a\"")
	tests := map[string]Config{
		"route without upstream": {Routes: []Route{{Zone: "."}}},
		"duplicate route":        {Routes: []Route{{Zone: "a.", Upstream: up}, {Zone: "A.", Upstream: up}}},
		"bad zone":               {Routes: []Route{{Zone: "a..b", Upstream: up}}},
		"record outside zone":    {LocalZones: []LocalZone{{Name: "home.arpa.", Records: []dns.RR{rr}}}},
		"cname and other data":   {LocalZones: []LocalZone{{Name: "home.arpa.", Records: []dns.RR{cname, txt}}}},
		"resolver.arpa reserved": {LocalZones: []LocalZone{{Name: "resolver.arpa."}}},
		"duplicate local zone":   {LocalZones: []LocalZone{{Name: "x.test."}, {Name: "X.test."}}},
		"root local zone":        {LocalZones: []LocalZone{{Name: "."}}},
		"invalid acl":            {ACLs: map[string]ACL{"x": {{}}}},
		"negative rate":          {RateLimit: RateLimit{QPS: -1}},
	}
	for name, cfg := range tests {
		if r, err := New(cfg); err == nil {
			r.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "lamina_coalesced_total", Help: "clash"}))
	if r, err := New(Config{Registerer: reg}); err == nil {
		r.Close()
		t.Error("a clashing metric was accepted")
	}
}

// A reload builds a new Resolver with the same Registerer: counters continue.
func TestMetricsSurviveRebuild(t *testing.T) {
	reg := prometheus.NewRegistry()
	for range 2 {
		r := mustNew(t, Config{Registerer: reg})
		serve(t, r, query("localhost.", dns.TypeA))
	}
	if n := counter(t, reg, "lamina_resolver_responses_total", map[string]string{"source": "local", "rcode": "NOERROR"}); n != 2 {
		t.Errorf("responses{local} = %v after two resolvers, want 2", n)
	}
}

func TestParseRecords(t *testing.T) {
	rrs, err := ParseRecords("home.arpa", []string{"nas A 192.168.1.10", "@ 60 TXT \"x y\"", "www.home.arpa. CNAME nas"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nas.home.arpa.\t3600\tIN\tA\t192.168.1.10", "home.arpa.\t60\tIN\tTXT\t\"x y\"", "www.home.arpa.\t3600\tIN\tCNAME\tnas.home.arpa."}
	for i, rr := range rrs {
		if rr.String() != want[i] {
			t.Errorf("record %d: %q, want %q", i, rr.String(), want[i])
		}
	}
	for _, bad := range [][]string{{"nas A 999.1.1.1"}, {"x.example. A 192.0.2.1"}, {""}, {"a A 192.0.2.1\nb A 192.0.2.2"}} {
		if _, err := ParseRecords("home.arpa.", bad); err == nil {
			t.Errorf("ParseRecords(%q) succeeded", bad)
		}
	}
}

func TestACL(t *testing.T) {
	up := answering("u", "192.0.2.1")
	reg := prometheus.NewRegistry()
	r := mustNew(t, Config{
		Routes: []Route{{Zone: ".", Upstream: up}},
		ACLs: map[string]ACL{
			"public": {{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Allow: false}, {Prefix: netip.MustParsePrefix("0.0.0.0/0"), Allow: true}},
			"closed": {},
		},
		Registerer: reg,
	})
	tests := []struct {
		listener, client string
		allowed          bool
	}{
		{"udp", "127.0.0.1", true},
		{"udp", "::1", true},
		{"udp", "::ffff:127.0.0.1", true},
		{"udp", "10.1.2.3", true},
		{"udp", "172.31.0.1", true},
		{"udp", "192.168.0.7", true},
		{"udp", "fd12::1", true},
		{"udp", "fe80::1%eth0", true},
		{"udp", "8.8.8.8", false},
		{"udp", "172.32.0.1", false},
		{"udp", "2001:db8::1", false},
		{"public", "8.8.8.8", true},
		{"public", "192.0.2.7", false},
		{"closed", "127.0.0.1", false},
	}
	for _, tt := range tests {
		q := from(query("example.com.", dns.TypeA), tt.client)
		q.Listener = tt.listener
		m := serve(t, r, q)
		code, _ := ede(m)
		if got := m.Rcode == dns.RcodeSuccess; got != tt.allowed {
			t.Errorf("%s from %s: rcode %s, want allowed=%v", tt.listener, tt.client, dns.RcodeToString[m.Rcode], tt.allowed)
		}
		if !tt.allowed && (m.Rcode != dns.RcodeRefused || code != dns.ExtendedErrorCodeProhibited) {
			t.Errorf("%s from %s: rcode %s EDE %d, want REFUSED with EDE 18", tt.listener, tt.client, dns.RcodeToString[m.Rcode], code)
		}
	}
	if n := counter(t, reg, "lamina_refused_total", map[string]string{"reason": "acl"}); n != 5 {
		t.Errorf("lamina_refused_total{reason=acl} = %v, want 5", n)
	}
}

func TestRateLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := mustNew(t, Config{
		Routes:     []Route{{Zone: ".", Upstream: answering("u", "192.0.2.1")}},
		RateLimit:  RateLimit{QPS: 1e-9, Burst: 3, Exempt: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}},
		Registerer: reg,
	})
	ask := func(client string) *dns.Msg { return serve(t, r, from(query("example.com.", dns.TypeA), client)) }
	for i := range 3 {
		if m := ask("10.0.0.1"); m.Rcode != dns.RcodeSuccess {
			t.Fatalf("query %d within burst: %s", i, dns.RcodeToString[m.Rcode])
		}
	}
	for _, c := range []string{"10.0.0.1", "10.0.0.200"} { // same /24
		m := ask(c)
		if code, _ := ede(m); m.Rcode != dns.RcodeRefused || code != dns.ExtendedErrorCodeProhibited {
			t.Fatalf("%s over the limit: %s EDE %d, want REFUSED EDE 18", c, dns.RcodeToString[m.Rcode], code)
		}
	}
	if m := ask("10.0.1.1"); m.Rcode != dns.RcodeSuccess {
		t.Errorf("another /24 limited: %s", dns.RcodeToString[m.Rcode])
	}
	for range 5 {
		if m := ask("10.9.1.1"); m.Rcode != dns.RcodeSuccess {
			t.Fatalf("exempt client limited")
		}
	}
	// IPv6 clients share a /56.
	for i := range 4 {
		client := "fd00:1:2:3300::1"
		if i == 3 {
			client = "fd00:1:2:33ff::2"
		}
		m := ask(client)
		if want := i < 3; (m.Rcode == dns.RcodeSuccess) != want {
			t.Fatalf("IPv6 query %d: %s", i, dns.RcodeToString[m.Rcode])
		}
	}
	if n := counter(t, reg, "lamina_ratelimited_total", nil); n != 3 {
		t.Errorf("lamina_ratelimited_total = %v, want 3", n)
	}
	if n := counter(t, reg, "lamina_refused_total", map[string]string{"reason": "ratelimit"}); n != 3 {
		t.Errorf("lamina_refused_total{reason=ratelimit} = %v, want 3", n)
	}
}

func TestRateLimitDropAndRefill(t *testing.T) {
	r := mustNew(t, Config{
		Routes:    []Route{{Zone: ".", Upstream: answering("u", "192.0.2.1")}},
		RateLimit: RateLimit{QPS: 2, Burst: 1, Action: RateLimitDrop, MaxClients: 4},
	})
	now := time.Unix(1000, 0)
	r.limiter.now = func() int64 { return now.UnixNano() }
	q := query("example.com.", dns.TypeA)
	if _, err := r.ServeDNS(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ServeDNS(context.Background(), q); !errors.Is(err, ErrDrop) {
		t.Fatalf("over the limit: err %v, want ErrDrop", err)
	}
	now = now.Add(500 * time.Millisecond) // one token at 2 QPS
	if _, err := r.ServeDNS(context.Background(), q); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if _, err := r.ServeDNS(context.Background(), q); !errors.Is(err, ErrDrop) {
		t.Fatalf("refill gave more than one token: %v", err)
	}
	for i := range 10 {
		serve(t, r, from(query("example.com.", dns.TypeA), netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).String()))
	}
	if n := r.limiter.len(); n != 4 {
		t.Errorf("bucket table holds %d networks, want the bound 4", n)
	}
}

func TestRefuseAny(t *testing.T) {
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: failing(t)}}, RefuseAny: true})
	m := serve(t, r, query("Example.com.", dns.TypeANY))
	if len(m.Answer) != 1 {
		t.Fatalf("answer %v", m.Answer)
	}
	h, ok := m.Answer[0].(*dns.HINFO)
	if !ok || h.Cpu != "RFC8482" || h.Os != "" || h.Hdr.Name != "Example.com." {
		t.Fatalf("answer %v, want HINFO \"RFC8482\" \"\"", m.Answer[0])
	}
	up := answering("u", "192.0.2.1")
	r = mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
	serve(t, r, query("example.com.", dns.TypeANY))
	if up.calls.Load() != 1 {
		t.Errorf("ANY not forwarded without RefuseAny")
	}
}

func TestSanity(t *testing.T) {
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: failing(t)}}})
	tests := []struct {
		name  string
		edit  func(m *dns.Msg)
		rcode int
	}{
		{"notify opcode", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }, dns.RcodeNotImplemented},
		{"edns version 1", func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }, dns.RcodeBadVers},
		{"axfr", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAXFR }, dns.RcodeNotImplemented},
		{"class any", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY }, dns.RcodeNotImplemented},
		{"chaos", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS; m.Question[0].Qtype = dns.TypeTXT }, dns.RcodeRefused},
		{"two questions", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
	}
	for _, tt := range tests {
		q := query("version.bind.", dns.TypeA)
		tt.edit(q.Msg)
		m, err := r.ServeDNS(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if m.Rcode != tt.rcode {
			t.Errorf("%s: rcode %s, want %s", tt.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
		}
		if _, err := m.Pack(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	q := query("example.com.", dns.TypeA)
	q.Msg.Response = true
	if _, err := r.ServeDNS(context.Background(), q); !errors.Is(err, ErrDrop) {
		t.Errorf("a response as query: %v, want ErrDrop", err)
	}
}

func TestQueryLog(t *testing.T) {
	var buf bytes.Buffer
	qlog := slog.New(slog.NewTextHandler(&buf, nil))
	for _, withIP := range []bool{false, true} {
		buf.Reset()
		r, _ := cachedResolver(t, Config{QueryLog: qlog, LogClientIP: withIP, ACLs: map[string]ACL{"*": {{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Allow: true}}}})
		serve(t, r, from(query("localhost.", dns.TypeA), "198.51.100.7"))
		q := from(query("example.com.", dns.TypeA), "198.51.100.7")
		if _, ok := r.ServeWire(q, pack(t, q.Msg), nil); !ok {
			t.Fatal("wire hit declined")
		}
		q.Msg.Question = nil
		r.ServeDNS(context.Background(), q) // FORMERR, no question to log
		out := buf.String()
		for _, want := range []string{"name=localhost. type=A transport=udp rcode=NOERROR source=local", "name=example.com. type=A transport=udp rcode=NOERROR source=cache"} {
			if !strings.Contains(out, want) {
				t.Errorf("query log lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "198.51.100.7") || strings.Contains(out, "198.51.100.0/24") != withIP {
			t.Errorf("LogClientIP=%v, log:\n%s", withIP, out)
		}
	}
}
