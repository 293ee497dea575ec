package cache

import (
	"bytes"
	"testing"

	"github.com/miekg/dns"
)

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
