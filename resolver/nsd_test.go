package resolver

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/upstream"
)

func startNSD(t *testing.T, zones map[string]string) *testenv.NSD {
	return testenv.StartNSD(t, testenv.NSDConfig{Zones: zones})
}

func nsdGroup(t *testing.T, rawURL string) upstream.Upstream {
	t.Helper()
	u, err := upstream.Parse(rawURL, upstream.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g, err := upstream.NewGroup(upstream.GroupConfig{Upstreams: []upstream.Upstream{u}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestSplitHorizonNSD forwards through the real UDP and TCP upstreams to two
// NSD instances that both serve corp.example. with different data: the inside
// view must win for corp.example. names, the outside view serves the rest.
func TestSplitHorizonNSD(t *testing.T) {
	inside := startNSD(t, map[string]string{"corp.example.": "www A 10.0.0.1\nmail A 10.0.0.25\n"})
	outside := startNSD(t, map[string]string{
		"corp.example.":  "www A 192.0.2.66\n",
		"xcorp.example.": "www A 192.0.2.77\n",
		"example.net.":   "www A 192.0.2.1\n",
	})
	c := newMemCache()
	r := mustNew(t, Config{
		Routes: []Route{
			{Zone: "Corp.Example", Upstream: nsdGroup(t, "udp://"+inside.Addr.String())},
			{Zone: ".", Upstream: nsdGroup(t, "tcp://"+outside.Addr.String())},
		},
		Cache: c,
	})
	tests := []struct {
		name  string
		rcode int
		addr  string
	}{
		{"www.corp.example.", dns.RcodeSuccess, "10.0.0.1"},
		{"WWW.CORP.EXAMPLE.", dns.RcodeSuccess, "10.0.0.1"},
		{"mail.corp.example.", dns.RcodeSuccess, "10.0.0.25"},
		{"www.xcorp.example.", dns.RcodeSuccess, "192.0.2.77"},
		{"www.example.net.", dns.RcodeSuccess, "192.0.2.1"},
		{"nope.corp.example.", dns.RcodeNameError, ""},
		{"www.example.org.", dns.RcodeRefused, ""}, // NSD's answer for a zone it lacks
	}
	for _, tt := range tests {
		q := query(tt.name, dns.TypeA)
		q.Msg.IsEdns0().Option = append(q.Msg.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		m := serve(t, r, q)
		if m.Rcode != tt.rcode {
			t.Errorf("%s: rcode %s, want %s", tt.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			continue
		}
		if tt.addr != "" && (len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != tt.addr || m.Answer[0].Header().Name != tt.name) {
			t.Errorf("%s: answer %v, want %s", tt.name, m.Answer, tt.addr)
		}
		if tt.rcode == dns.RcodeNameError && (len(m.Ns) == 0 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: NXDOMAIN without SOA: %v", tt.name, m.Ns)
		}
		if m.Authoritative {
			t.Errorf("%s: forwarded answer has AA set", tt.name)
		}
	}

	// Filled by the first pass: answered on the fast path.
	q := query("www.CORP.example.", dns.TypeA)
	out, ok := r.ServeWire(q, pack(t, q.Msg), nil)
	var m dns.Msg
	if !ok || m.Unpack(out) != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
		t.Fatalf("cached inside answer not served from the wire path: ok=%v %v", ok, &m)
	}

	// The inside server goes away: uncached names get SERVFAIL saying why.
	inside.Stop()
	resp := serve(t, r, query("other.corp.example.", dns.TypeA))
	code, _ := ede(resp)
	if resp.Rcode != dns.RcodeServerFailure ||
		(code != dns.ExtendedErrorCodeNoReachableAuthority && code != dns.ExtendedErrorCodeNetworkError) {
		t.Errorf("inside server down: %s EDE %d, want SERVFAIL with EDE 22 or 23", dns.RcodeToString[resp.Rcode], code)
	}
	if m := serve(t, r, query("www.example.net.", dns.TypeAAAA)); m.Rcode != dns.RcodeSuccess {
		t.Errorf("outside view affected: %s", dns.RcodeToString[m.Rcode])
	}
}
