package cache

import (
	"slices"
	"strings"
	"testing"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

func TestOnlyTheAnswerIsKept(t *testing.T) {
	for _, tc := range []struct {
		name         string
		qname        string
		qtype        uint16
		do           bool
		rcode        int
		answer, ns   []string
		extra        []string
		wantAns      []string // owner/type of what is served
		wantNs       []string
		notCacheable bool
	}{
		{
			name: "CNAME chain to the target", qname: "www.example.com.", qtype: dns.TypeA,
			answer: []string{
				"www.example.com. 300 IN CNAME web.example.net.",
				"web.example.net. 300 IN CNAME edge.cdn.test.",
				"edge.cdn.test. 60 IN A 192.0.2.7",
			},
			wantAns: []string{"www.example.com./CNAME", "web.example.net./CNAME", "edge.cdn.test./A"},
		},
		{
			name: "poisoning: unrelated answers, NS and glue dropped", qname: "www.example.com.", qtype: dns.TypeA,
			answer: []string{
				"www.example.com. 300 IN A 192.0.2.1",
				"bank.test. 86400 IN A 203.0.113.66",
				"www.example.com. 300 IN AAAA 2001:db8::1",
			},
			ns:      []string{"example.com. 86400 IN NS ns.evil.test."},
			extra:   []string{"ns.evil.test. 86400 IN A 203.0.113.66"},
			wantAns: []string{"www.example.com./A"},
		},
		{
			name:  "poisoning: records of the question's type at a CNAME's owner that is not in the chain",
			qname: "a.example.", qtype: dns.TypeA,
			answer: []string{
				"a.example. 300 IN CNAME b.example.",
				"c.example. 300 IN A 203.0.113.66",
				"b.example. 300 IN A 192.0.2.2",
			},
			wantAns: []string{"a.example./CNAME", "b.example./A"},
		},
		{
			name: "DO keeps RRSIGs of kept RRsets only", qname: "a.example.", qtype: dns.TypeA, do: true,
			answer: []string{
				"a.example. 300 IN A 192.0.2.1",
				"a.example. 300 IN RRSIG A 13 2 300 20261231000000 20261101000000 1234 example. AAAA",
				"z.example. 300 IN RRSIG A 13 2 300 20261231000000 20261101000000 1234 example. AAAA",
			},
			wantAns: []string{"a.example./A", "a.example./RRSIG"},
		},
		{
			name: "without DO no RRSIG", qname: "a.example.", qtype: dns.TypeA,
			answer: []string{
				"a.example. 300 IN A 192.0.2.1",
				"a.example. 300 IN RRSIG A 13 2 300 20261231000000 20261101000000 1234 example. AAAA",
			},
			wantAns: []string{"a.example./A"},
		},
		{
			name: "DNAME kept with DO", qname: "x.old.example.", qtype: dns.TypeA, do: true,
			answer: []string{
				"old.example. 300 IN DNAME new.example.",
				"x.old.example. 300 IN CNAME x.new.example.",
				"x.new.example. 300 IN A 192.0.2.9",
				"other.example. 300 IN DNAME evil.test.",
			},
			wantAns: []string{"x.old.example./CNAME", "x.new.example./A", "old.example./DNAME"},
		},
		{
			name: "NODATA after a chain keeps the target zone's SOA", qname: "www.example.com.", qtype: dns.TypeAAAA,
			answer: []string{"www.example.com. 300 IN CNAME host.example.net."},
			ns: []string{
				"example.net. 300 IN SOA ns.example.net. h.example.net. 1 2 3 4 60",
				"example.net. 300 IN NS ns.example.net.",
			},
			wantAns: []string{"www.example.com./CNAME"},
			wantNs:  []string{"example.net./SOA"},
		},
		{
			name: "SOA of an unrelated zone is not a negative answer", qname: "a.example.", qtype: dns.TypeA,
			rcode:        dns.RcodeNameError,
			ns:           []string{"evil.test. 300 IN SOA ns.evil.test. h.evil.test. 1 2 3 4 60"},
			notCacheable: true,
		},
		{
			name: "DO keeps NSEC proofs inside the SOA's zone", qname: "a.example.", qtype: dns.TypeA, do: true,
			rcode: dns.RcodeNameError,
			ns: []string{
				"example. 300 IN SOA ns.example. h.example. 1 2 3 4 60",
				"9.example. 300 IN NSEC b.example. A",
				"9.example. 300 IN RRSIG NSEC 13 2 300 20261231000000 20261101000000 1234 example. AAAA",
				"evil.test. 300 IN NSEC z.evil.test. A",
			},
			wantNs: []string{"example./SOA", "9.example./NSEC", "9.example./RRSIG"},
		},
		{
			name: "referral without SOA", qname: "a.example.", qtype: dns.TypeA,
			ns:           []string{"example. 300 IN NS ns.example."},
			notCacheable: true,
		},
		{
			name: "CNAME loop", qname: "a.example.", qtype: dns.TypeA,
			answer: []string{
				"a.example. 300 IN CNAME b.example.",
				"b.example. 300 IN CNAME a.example.",
			},
			notCacheable: true,
		},
		{
			name: "NXDOMAIN with an answer of the type is contradictory", qname: "a.example.", qtype: dns.TypeA,
			rcode:        dns.RcodeNameError,
			answer:       []string{"a.example. 300 IN A 192.0.2.1"},
			ns:           []string{"example. 300 IN SOA ns.example. h.example. 1 2 3 4 60"},
			notCacheable: true,
		},
		{name: "REFUSED", qname: "a.example.", qtype: dns.TypeA, rcode: dns.RcodeRefused, notCacheable: true},
		{name: "FORMERR", qname: "a.example.", qtype: dns.TypeA, rcode: dns.RcodeFormatError, notCacheable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t, Config{})
			req := query(tc.qname, tc.qtype, true, tc.do)
			c.Set(req, reply(req, tc.rcode, rrs(t, tc.answer...), rrs(t, tc.ns...), rrs(t, tc.extra...)))
			m, fr := c.Get(req, false)
			if tc.notCacheable {
				if fr != resolver.Miss {
					t.Fatalf("cached: %v", m)
				}
				return
			}
			if fr != resolver.Fresh {
				t.Fatalf("not cached (%v)", fr)
			}
			if got := ownerTypes(m.Answer); !slices.Equal(got, tc.wantAns) {
				t.Errorf("answer %v, want %v", got, tc.wantAns)
			}
			if got := ownerTypes(m.Ns); !slices.Equal(got, tc.wantNs) {
				t.Errorf("authority %v, want %v", got, tc.wantNs)
			}
			if len(m.Extra) != 1 { // only the OPT
				t.Errorf("additional %v, want only OPT", m.Extra)
			}
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %d, want %d", m.Rcode, tc.rcode)
			}
		})
	}
}

func ownerTypes(rrs []dns.RR) []string {
	var out []string
	for _, r := range rrs {
		out = append(out, strings.ToLower(r.Header().Name)+"/"+dns.TypeToString[r.Header().Rrtype])
	}
	return out
}

func TestNotStored(t *testing.T) {
	req := query("a.example.", dns.TypeA, false, false)
	ok := func() *dns.Msg {
		return reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil)
	}
	for name, mutate := range map[string]func(r, m *dns.Msg) (*dns.Msg, *dns.Msg){
		"TC":              func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Truncated = true; return r, m },
		"other name":      func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Question[0].Name = "b.example."; return r, m },
		"other type":      func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Question[0].Qtype = dns.TypeMX; return r, m },
		"no question":     func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Question = nil; return r, m },
		"not a response":  func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Response = false; return r, m },
		"nil response":    func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { return r, nil },
		"opcode":          func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Opcode = dns.OpcodeUpdate; return r, m },
		"not implemented": func(r, m *dns.Msg) (*dns.Msg, *dns.Msg) { m.Rcode = dns.RcodeNotImplemented; return r, m },
	} {
		c, _ := newCache(t, Config{})
		r, m := mutate(req.Copy(), ok())
		c.Set(r, m)
		if st := c.Stats(); st.Entries != 0 {
			t.Errorf("%s: stored", name)
		}
	}
	// Set never modifies what it is given.
	c, _ := newCache(t, Config{})
	resp := ok()
	resp.Answer = append(resp.Answer, rr(t, "evil.test. 60 IN A 203.0.113.1"))
	before := resp.String()
	c.Set(req, resp)
	if resp.String() != before {
		t.Error("Set modified the response")
	}
}
