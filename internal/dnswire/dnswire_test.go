package dnswire

import (
	"testing"

	"github.com/miekg/dns"
)

// TestWalk walks a compressed message record by record and checks every
// type and TTL against miekg/dns's decoding, and that truncated copies are
// refused rather than read past their end.
func TestWalk(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.Response, m.Compress = true, true
	for _, s := range []string{
		"www.example.org. 300 IN CNAME web.example.org.",
		"web.example.org. 60 IN A 192.0.2.1",
		"example.org. 3600 IN NS ns.example.org.",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	m.SetEdns0(1232, false)
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	off, n, ok := SkipQuestions(msg)
	if !ok || n != 4 {
		t.Fatalf("SkipQuestions: %d records, ok %v", n, ok)
	}
	want := append(append([]dns.RR{}, m.Answer...), m.Extra...)
	for i := range n {
		typ, ttl, next, ok := RR(msg, off)
		if !ok || typ != want[i].Header().Rrtype || ttl != want[i].Header().Ttl {
			t.Fatalf("record %d: type %d ttl %d ok %v, want %v", i, typ, ttl, ok, want[i])
		}
		off = next
	}
	if off != len(msg) {
		t.Fatalf("walked to %d of %d bytes", off, len(msg))
	}
	for cut := range len(msg) {
		b := msg[:cut]
		off, n, ok := SkipQuestions(b)
		for i := 0; ok && i < n; i++ {
			_, _, off, ok = RR(b, off)
		}
		if ok && off > len(b) {
			t.Fatalf("cut at %d: walked past the end", cut)
		}
	}
	if SkipName([]byte{0x40}, 0) != -1 || SkipName([]byte{0xC0}, 0) != -1 || SkipName([]byte{3, 'a'}, 0) != -1 {
		t.Error("SkipName accepted a reserved label type or a cut name")
	}
}
