package resolver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func homeZone(t *testing.T) []LocalZone {
	t.Helper()
	home, err := ParseRecords("home.arpa.", []string{
		"@ 3600 SOA ns.home.arpa. admin.home.arpa. 2024 3600 600 86400 60",
		"nas 300 A 192.168.1.10",
		"nas 300 AAAA fd00::10",
		"www CNAME nas",
		"alias CNAME www",
		"ext CNAME www.example.com.",
		"txt TXT \"hello world\"",
		"_http._tcp SRV 0 0 80 nas",
		"svc HTTPS 1 . alpn=h2",
		"_dns.svc SVCB 1 svc.home.arpa. alpn=dot port=853",
		"*.wild A 192.168.1.99",
		"a.b.deep A 192.168.1.5",
		"loop1 CNAME loop2", "loop2 CNAME loop1",
	})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := ParseRecords("1.168.192.in-addr.arpa", []string{"10 PTR nas.home.arpa."})
	if err != nil {
		t.Fatal(err)
	}
	return []LocalZone{{Name: "home.arpa", Records: home}, {Name: "1.168.192.in-addr.arpa.", Records: rev}}
}

func TestLocalZones(t *testing.T) {
	up := answering("public", "192.0.2.80")
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, LocalZones: homeZone(t)})
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string // RR strings, owner as the client wrote it
		soaTTL uint32   // non-zero: a negative answer with this SOA TTL
	}{
		{"nas.home.arpa.", dns.TypeA, 0, []string{"nas.home.arpa.\t300\tIN\tA\t192.168.1.10"}, 0},
		{"NAS.Home.Arpa.", dns.TypeAAAA, 0, []string{"NAS.Home.Arpa.\t300\tIN\tAAAA\tfd00::10"}, 0},
		{"www.home.arpa.", dns.TypeA, 0, []string{"www.home.arpa.\t3600\tIN\tCNAME\tnas.home.arpa.", "nas.home.arpa.\t300\tIN\tA\t192.168.1.10"}, 0},
		{"alias.home.arpa.", dns.TypeAAAA, 0, []string{"alias.home.arpa.\t3600\tIN\tCNAME\twww.home.arpa.", "www.home.arpa.\t3600\tIN\tCNAME\tnas.home.arpa.", "nas.home.arpa.\t300\tIN\tAAAA\tfd00::10"}, 0},
		{"www.home.arpa.", dns.TypeCNAME, 0, []string{"www.home.arpa.\t3600\tIN\tCNAME\tnas.home.arpa."}, 0},
		{"txt.home.arpa.", dns.TypeTXT, 0, []string{"txt.home.arpa.\t3600\tIN\tTXT\t\"hello world\""}, 0},
		{"_http._tcp.home.arpa.", dns.TypeSRV, 0, []string{"_http._tcp.home.arpa.\t3600\tIN\tSRV\t0 0 80 nas.home.arpa."}, 0},
		{"10.1.168.192.in-addr.arpa.", dns.TypePTR, 0, []string{"10.1.168.192.in-addr.arpa.\t3600\tIN\tPTR\tnas.home.arpa."}, 0},
		{"svc.home.arpa.", dns.TypeHTTPS, 0, []string{"svc.home.arpa.\t3600\tIN\tHTTPS\t1 . alpn=\"h2\""}, 0},
		{"_dns.svc.home.arpa.", dns.TypeSVCB, 0, []string{"_dns.svc.home.arpa.\t3600\tIN\tSVCB\t1 svc.home.arpa. alpn=\"dot\" port=\"853\""}, 0},
		{"x.wild.home.arpa.", dns.TypeA, 0, []string{"x.wild.home.arpa.\t3600\tIN\tA\t192.168.1.99"}, 0},
		{"home.arpa.", dns.TypeSOA, 0, []string{"home.arpa.\t3600\tIN\tSOA\tns.home.arpa. admin.home.arpa. 2024 3600 600 86400 60"}, 0},
		// A name with local addresses has no HTTPS record: NODATA, so that
		// public hints cannot bypass the local data.
		{"nas.home.arpa.", dns.TypeHTTPS, 0, nil, 60},
		{"nas.home.arpa.", dns.TypeMX, 0, nil, 60},
		{"deep.home.arpa.", dns.TypeA, 0, nil, 60}, // empty non-terminal
		{"missing.home.arpa.", dns.TypeA, dns.RcodeNameError, nil, 60},
		{"x.nas.home.arpa.", dns.TypeA, dns.RcodeNameError, nil, 60},
		{"x.deep.home.arpa.", dns.TypeA, dns.RcodeNameError, nil, 60},
		{"11.1.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, 300},
		{"loop1.home.arpa.", dns.TypeA, dns.RcodeServerFailure, nil, 0},
		// Built-in locally served reverse zone (RFC 6303).
		{"5.0.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, 300},
		{"4.3.2.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := serve(t, r, query(tt.name, tt.qtype))
			if m.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			}
			if !m.Authoritative && tt.rcode != dns.RcodeServerFailure {
				t.Error("AA not set")
			}
			var got []string
			for _, rr := range m.Answer {
				got = append(got, rr.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.answer, "\n") {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.answer, "\n"))
			}
			if tt.soaTTL != 0 {
				if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || m.Ns[0].Header().Ttl != tt.soaTTL {
					t.Errorf("authority %v, want one SOA with TTL %d", m.Ns, tt.soaTTL)
				}
			}
		})
	}
	if n := up.calls.Load(); n != 0 {
		t.Errorf("upstream called %d times for local names", n)
	}
}

func TestLocalCNAMELeavingLocalData(t *testing.T) {
	up := answering("public", "192.0.2.80")
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, LocalZones: homeZone(t)})
	m := serve(t, r, query("ext.home.arpa.", dns.TypeA))
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 || m.Authoritative {
		t.Fatalf("rcode %s AA %v answer %v", dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
	}
	if a, ok := m.Answer[1].(*dns.A); !ok || a.Hdr.Name != "www.example.com." || a.A.String() != "192.0.2.80" {
		t.Errorf("chased answer %v", m.Answer[1])
	}
	if up.calls.Load() != 1 {
		t.Errorf("upstream calls %d, want 1", up.calls.Load())
	}
}

func TestRoutedReverseZone(t *testing.T) {
	corp := answering("corp", "10.0.0.1")
	r := mustNew(t, Config{Routes: []Route{
		{Zone: ".", Upstream: failing(t)},
		{Zone: "10.in-addr.arpa.", Upstream: corp},
	}})
	serve(t, r, query("4.3.2.10.in-addr.arpa.", dns.TypePTR))
	if corp.calls.Load() != 1 {
		t.Errorf("routed private reverse zone not forwarded")
	}
	if m := serve(t, r, query("4.3.168.192.in-addr.arpa.", dns.TypePTR)); m.Rcode != dns.RcodeNameError {
		t.Errorf("unrouted private reverse zone: %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
}

func TestSpecialUseNames(t *testing.T) {
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: failing(t)}}})
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string
	}{
		{"localhost.", dns.TypeA, 0, "127.0.0.1"},
		{"localhost.", dns.TypeAAAA, 0, "::1"},
		{"LocalHost.", dns.TypeA, 0, "127.0.0.1"},
		{"foo.bar.localhost.", dns.TypeA, 0, "127.0.0.1"},
		{"foo.localhost.", dns.TypeAAAA, 0, "::1"},
		{"localhost.", dns.TypeMX, 0, ""},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, 0, "localhost."},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.", dns.TypePTR, 0, "localhost."},
		{"2.0.0.127.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, ""},
		{"foo.invalid.", dns.TypeA, dns.RcodeNameError, ""},
		{"duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion.", dns.TypeA, dns.RcodeNameError, ""},
		{"printer.home.arpa.", dns.TypeA, dns.RcodeNameError, ""},
	}
	for _, tt := range tests {
		m := serve(t, r, query(tt.name, tt.qtype))
		if m.Rcode != tt.rcode || !m.Authoritative {
			t.Errorf("%s %s: rcode %s AA %v", tt.name, dns.TypeToString[tt.qtype], dns.RcodeToString[m.Rcode], m.Authoritative)
			continue
		}
		var got string
		if len(m.Answer) == 1 {
			f := strings.Fields(m.Answer[0].String())
			got = f[len(f)-1]
		}
		if got != tt.answer {
			t.Errorf("%s %s: answer %v, want %q", tt.name, dns.TypeToString[tt.qtype], m.Answer, tt.answer)
		}
		if tt.answer == "" && len(m.Ns) != 1 {
			t.Errorf("%s: negative answer without SOA", tt.name)
		}
	}
}

func TestResolverArpaNeverForwarded(t *testing.T) {
	self, err := ParseRecords("dns.example.net.", []string{
		"dns.example.net. 300 HTTPS 1 . alpn=h3,h2 ipv4hint=192.0.2.53",
		"_dns.dns.example.net. 300 SVCB 1 dns.example.net. alpn=h2,h3 dohpath=/dns-query{?dns}",
	})
	if err != nil {
		t.Fatal(err)
	}
	ddr, err := ParseRecords("resolver.arpa.", []string{"_dns 300 SVCB 2 dns.example.net. alpn=dot port=853"})
	if err != nil {
		t.Fatal(err)
	}
	all := append(self, ddr...)
	fwd := answering("public", "192.0.2.1")
	routes := []Route{{Zone: ".", Upstream: fwd}, {Zone: "resolver.arpa.", Upstream: failing(t)}}
	for _, withSelf := range []bool{true, false} {
		cfg := Config{Routes: routes}
		if withSelf {
			cfg.SelfRecords = func() []dns.RR { return all }
		}
		r := mustNew(t, cfg)
		m := serve(t, r, query("_DNS.resolver.arpa.", dns.TypeSVCB))
		if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
			t.Fatalf("self=%v: rcode %s AA %v", withSelf, dns.RcodeToString[m.Rcode], m.Authoritative)
		}
		if withSelf && (len(m.Answer) != 1 || m.Answer[0].Header().Name != "_DNS.resolver.arpa.") {
			t.Errorf("DDR answer %v", m.Answer)
		}
		if !withSelf && (len(m.Answer) != 0 || len(m.Ns) != 1) {
			t.Errorf("DDR off: answer %v authority %v, want NODATA with SOA", m.Answer, m.Ns)
		}
		for _, tc := range []struct {
			name  string
			qtype uint16
			rcode int
		}{
			{"_dns.resolver.arpa.", dns.TypeA, dns.RcodeSuccess},
			{"resolver.arpa.", dns.TypeSVCB, dns.RcodeSuccess},
			{"x._dns.resolver.arpa.", dns.TypeSVCB, dns.RcodeNameError},
			{"foo.resolver.arpa.", dns.TypeA, dns.RcodeNameError},
		} {
			m := serve(t, r, query(tc.name, tc.qtype))
			if m.Rcode != tc.rcode || len(m.Answer) != 0 {
				t.Errorf("self=%v %s: rcode %s answer %v", withSelf, tc.name, dns.RcodeToString[m.Rcode], m.Answer)
			}
		}
	}
	r := mustNew(t, Config{Routes: routes, SelfRecords: func() []dns.RR { return all }})
	if m := serve(t, r, query("dns.example.net.", dns.TypeHTTPS)); len(m.Answer) != 1 || !m.Authoritative {
		t.Errorf("own HTTPS record: %v", m.Answer)
	}
	if m := serve(t, r, query("_dns.dns.example.net.", dns.TypeSVCB)); len(m.Answer) != 1 {
		t.Errorf("own SVCB record: %v", m.Answer)
	}
	before := fwd.calls.Load()
	serve(t, r, query("dns.example.net.", dns.TypeA)) // not ours: forwarded
	if fwd.calls.Load() != before+1 {
		t.Error("a type Lamina does not publish was not forwarded")
	}
}

// TestLocalCNAMEIntoRoutedZone: a local CNAME whose target lies in a
// built-in zone that a route claims (home.arpa on the home router) is
// forwarded, as the target asked directly would be, not answered NXDOMAIN.
func TestLocalCNAMEIntoRoutedZone(t *testing.T) {
	lan := answering("lan", "192.168.1.20")
	rrs, err := ParseRecords("example.internal.", []string{"nas CNAME nas.home.arpa."})
	if err != nil {
		t.Fatal(err)
	}
	r := mustNew(t, Config{
		Routes:     []Route{{Zone: ".", Upstream: failing(t)}, {Zone: "home.arpa.", Upstream: lan}},
		LocalZones: []LocalZone{{Name: "example.internal.", Records: rrs}},
	})
	m := serve(t, r, query("nas.example.internal.", dns.TypeA))
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Fatalf("rcode %s answer %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
	if a, ok := m.Answer[1].(*dns.A); !ok || a.A.String() != "192.168.1.20" {
		t.Errorf("chased answer %v", m.Answer[1])
	}
	if lan.calls.Load() != 1 {
		t.Errorf("home.arpa route called %d times, want 1", lan.calls.Load())
	}
}
