package cache

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

// TestRealResponsesFromNSD caches what a real authoritative server (NSD)
// answers — its packing, compression, NS and glue — and checks that the cache
// serves exactly the answer records, drops the rest, and takes negative TTLs
// from NSD's SOA.
func TestRealResponsesFromNSD(t *testing.T) {
	nsd := testenv.StartNSD(t, testenv.NSDConfig{Zones: map[string]string{
		"example.test.": strings.Join([]string{
			"www 300 A 192.0.2.1", "www 300 A 192.0.2.2", "www 120 AAAA 2001:db8::1",
			"alias 200 CNAME www", "chain 100 CNAME alias",
			"mx MX 10 mail", "mail A 192.0.2.25",
			`txt TXT "hello" "world"`,
			"sub NS ns.sub", "ns.sub A 192.0.2.53",
		}, "\n"),
	}})
	client := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	ask := func(name string, qtype uint16) (*dns.Msg, *dns.Msg) {
		t.Helper()
		req := query(name, qtype, true, false)
		resp, _, err := client.Exchange(req, nsd.Addr.String())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return req, resp
	}

	for _, tc := range []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int    // records NSD answers that belong to the answer
		negTTL  uint32 // for negative answers: min(SOA TTL 300, MINIMUM 60)
		noCache bool
		minTTL  uint32
	}{
		{name: "WwW.ExAmPlE.tEsT.", qtype: dns.TypeA, answers: 2, minTTL: 300},
		{name: "chain.example.test.", qtype: dns.TypeA, answers: 4, minTTL: 100},
		{name: "mx.example.test.", qtype: dns.TypeMX, answers: 1, minTTL: 300},
		{name: "txt.example.test.", qtype: dns.TypeTXT, answers: 1, minTTL: 300},
		{name: "nope.example.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, negTTL: 60},
		{name: "www.example.test.", qtype: dns.TypeMX, negTTL: 60},
		{name: "x.sub.example.test.", qtype: dns.TypeA, noCache: true}, // a referral
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t, Config{})
			req, resp := ask(tc.name, tc.qtype)
			if resp.Rcode != tc.rcode {
				t.Fatalf("NSD answered %s", dns.RcodeToString[resp.Rcode])
			}
			c.Set(req, resp)
			q := query(strings.ToUpper(tc.name), tc.qtype, true, false)
			m, fr := wireGet(t, c, q, 1232)
			if tc.noCache {
				if fr != resolver.Miss || c.Stats().Entries != 0 {
					t.Fatalf("cached %v", m)
				}
				return
			}
			if fr != resolver.Fresh {
				t.Fatalf("not cached: %v", resp)
			}
			if m.Rcode != tc.rcode || m.Question[0].Name != q.Question[0].Name || m.Authoritative {
				t.Errorf("header/question %v", m)
			}
			if got, want := normalized(m.Answer), normalized(resp.Answer); len(resp.Answer) != tc.answers || !slices.Equal(got, want) {
				t.Errorf("answer\n%v\nwant NSD's %d records\n%v", got, tc.answers, want)
			}
			if len(m.Extra) != 1 || m.Extra[0].Header().Rrtype != dns.TypeOPT {
				t.Errorf("additional %v: NSD's glue must go", m.Extra)
			}
			if tc.negTTL == 0 {
				if len(m.Ns) != 0 {
					t.Errorf("authority %v kept on a positive answer", m.Ns)
				}
				for _, r := range m.Answer {
					if r.Header().Ttl != tc.minTTL {
						t.Errorf("TTL %d, want the answer's minimum %d", r.Header().Ttl, tc.minTTL)
					}
				}
				return
			}
			if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || m.Ns[0].Header().Ttl != tc.negTTL {
				t.Errorf("authority %v, want NSD's SOA alone with TTL %d", m.Ns, tc.negTTL)
			}
		})
	}
}

// normalized renders records without TTL, lower-cased (compression
// pointers into the question give names in RDATA the client's spelling too,
// as Unbound's answers do), sorted.
func normalized(rrs []dns.RR) []string {
	var out []string
	for _, r := range rrs {
		r = dns.Copy(r)
		r.Header().Ttl = 0
		out = append(out, strings.ToLower(r.String()))
	}
	slices.Sort(out)
	return out
}
