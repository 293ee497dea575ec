package cache

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

// colKey is one side of a forced hash collision.
type colKey struct {
	name          string
	qtype, qclass uint16 // TXT or SPF (same RDATA format)
	do, cd        bool
}

func (k colKey) String() string {
	return fmt.Sprintf("%s/%d/%d/do=%v/cd=%v", k.name, k.qtype, k.qclass, k.do, k.cd)
}

func (k colKey) req() *dns.Msg {
	m := query(k.name, k.qtype, k.do, k.do)
	m.Question[0].Qclass = k.qclass
	m.CheckingDisabled = k.cd
	return m
}

// answer is a record whose data names the key, to tell the keys apart.
func (k colKey) answer() dns.RR {
	h := dns.RR_Header{Name: k.name, Rrtype: k.qtype, Class: k.qclass, Ttl: 300}
	if k.qtype == dns.TypeSPF {
		return &dns.SPF{Hdr: h, Txt: []string{k.String()}}
	}
	return &dns.TXT{Hdr: h, Txt: []string{k.String()}}
}

func (k colKey) set(c *Cache) {
	req := k.req()
	c.Set(req, reply(req, dns.RcodeSuccess, []dns.RR{k.answer()}, nil, nil))
}

// answered asks for k on both paths and reports whether it was answered; an
// answer must be k's own.
func (k colKey) answered(t *testing.T, c *Cache) bool {
	t.Helper()
	m, fr := c.Get(k.req(), false)
	wm, wfr := wireGet(t, c, k.req(), 0xffff)
	if (fr == resolver.Miss) != (wfr == resolver.Miss) {
		t.Fatalf("%v: Get %v but AppendWire %v", k, fr, wfr)
	}
	if fr == resolver.Miss {
		return false
	}
	for _, r := range []*dns.Msg{m, wm} {
		q := r.Question[0]
		if len(r.Answer) != 1 || r.Answer[0].String() != k.answer().String() ||
			q.Name != k.name || q.Qtype != k.qtype || q.Qclass != k.qclass {
			t.Fatalf("%v answered with %v", k, r)
		}
	}
	return true
}

// TestHashCollision forces every key onto one hash: two keys must never
// answer each other's queries, whatever part of the key tells them apart,
// and the newer one replaces the older.
func TestHashCollision(t *testing.T) {
	base := colKey{"a.example.", dns.TypeTXT, dns.ClassINET, false, false}
	others := map[string]colKey{
		"name":        {"b.example.", dns.TypeTXT, dns.ClassINET, false, false},
		"longer name": {"a.example.com.", dns.TypeTXT, dns.ClassINET, false, false},
		"parent name": {"example.", dns.TypeTXT, dns.ClassINET, false, false},
		"type":        {"a.example.", dns.TypeSPF, dns.ClassINET, false, false},
		"class":       {"a.example.", dns.TypeTXT, dns.ClassCHAOS, false, false},
		"DO":          {"a.example.", dns.TypeTXT, dns.ClassINET, true, false},
		"CD":          {"a.example.", dns.TypeTXT, dns.ClassINET, false, true},
	}
	for what, other := range others {
		t.Run(what, func(t *testing.T) {
			c, _ := newCache(t, Config{})
			c.hashMask = 0 // every key hashes to 0
			base.set(c)
			if other.answered(t, c) {
				t.Fatal("answered from the colliding entry")
			}
			if !base.answered(t, c) {
				t.Fatal("own entry lost to a lookup of the other key")
			}
			other.set(c)
			if !other.answered(t, c) || base.answered(t, c) {
				t.Fatal("the newer entry did not replace the colliding one")
			}
			// A SERVFAIL for the other key replaces, never merges with, it.
			req := base.req()
			c.Set(req, reply(req, dns.RcodeServerFailure, nil, nil, nil))
			if other.answered(t, c) {
				t.Fatal("answered after a colliding SERVFAIL")
			}
			// Flushing one name leaves a colliding entry of another name.
			other.set(c)
			if base.name != other.name {
				if n := c.FlushName(base.name); n != 0 || !other.answered(t, c) {
					t.Fatalf("FlushName(%s) removed %d colliding entries", base.name, n)
				}
			}
			if st := c.Stats(); st.Entries != 1 {
				t.Fatalf("%d entries under one hash", st.Entries)
			}
		})
	}
}

// TestPackLikeMsgPack checks that Set's packer produces exactly what
// Msg.Pack does with compression, and leaves the records alone.
func TestPackLikeMsgPack(t *testing.T) {
	soa := "example. 300 IN SOA ns.example. hostmaster.example. 1 2 3 4 60"
	tests := []struct {
		name       string
		q          dns.Question
		answer, ns []dns.RR
		ad, cd     bool
		rcode      int
	}{
		{"A", dns.Question{Name: "a.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
			rrs(t, "a.example. 60 IN A 192.0.2.1", "a.example. 60 IN A 192.0.2.2"), nil, false, false, 0},
		{"CNAME chain", dns.Question{Name: "WWW.Example.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET},
			rrs(t, "www.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME c.other.",
				"c.other. 60 IN AAAA 2001:db8::1"), nil, true, true, 0},
		{"MX with names", dns.Question{Name: "example.", Qtype: dns.TypeMX, Qclass: dns.ClassINET},
			rrs(t, "example. 60 IN MX 10 mail.example.", "example. 60 IN MX 20 mail2.example."), nil, false, false, 0},
		{"NXDOMAIN", dns.Question{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
			nil, rrs(t, soa), false, false, dns.RcodeNameError},
		{"SERVFAIL", dns.Question{Name: "x.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
			nil, nil, false, false, dns.RcodeServerFailure},
		{"root", dns.Question{Name: ".", Qtype: dns.TypeNS, Qclass: dns.ClassINET},
			rrs(t, ". 60 IN NS a.root-servers.net."), nil, false, false, 0},
	}
	p := newPacker().(*packer)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &dns.Msg{
				MsgHdr: dns.MsgHdr{Response: true, RecursionDesired: true, RecursionAvailable: true,
					AuthenticatedData: tt.ad, CheckingDisabled: tt.cd, Rcode: tt.rcode},
				Compress: true, Question: []dns.Question{tt.q}, Answer: tt.answer, Ns: tt.ns,
			}
			want, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			var before []uint16
			for _, r := range append(append([]dns.RR{}, tt.answer...), tt.ns...) {
				before = append(before, r.Header().Rdlength)
			}
			bits := uint16(flagQR|flagRD|flagRA) | uint16(tt.rcode)
			if tt.ad {
				bits |= flagAD
			}
			if tt.cd {
				bits |= flagCD
			}
			for range 2 { // the second run reuses the compression map
				got, err := p.pack(bits, tt.q, tt.answer, tt.ns)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("packed\n%x\nwant (Msg.Pack)\n%x", got, want)
				}
			}
			for i, r := range append(append([]dns.RR{}, tt.answer...), tt.ns...) {
				if r.Header().Rdlength != before[i] {
					t.Errorf("record %d modified: Rdlength %d -> %d", i, before[i], r.Header().Rdlength)
				}
			}
		})
	}
}
