package upstream

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestEndpointResolve: a hostname is resolved through the bootstrap (A then
// AAAA), cached for the answer's TTL clamped to at least 30 s, re-resolved
// after it, and kept when the bootstrap later fails.
func TestEndpointResolve(t *testing.T) {
	var calls atomic.Int32
	var broken atomic.Bool
	boot := &fake{name: "boot", fn: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		calls.Add(1)
		if broken.Load() {
			return nil, errBroken
		}
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 5}
		if q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: []byte{192, 0, 2, 1}})
		} else {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: netip.MustParseAddr("2001:db8::1").AsSlice()})
		}
		return m, nil
	}}
	ep, err := newEndpoint("dns.example", 853, Options{Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853"), netip.MustParseAddrPort("[2001:db8::1]:853")}
	check := func(wantCalls int32) {
		t.Helper()
		got, err := ep.resolve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("addresses %v, want %v", got, want)
		}
		if n := calls.Load(); n != wantCalls {
			t.Fatalf("%d bootstrap queries, want %d", n, wantCalls)
		}
	}
	check(2)
	check(2) // cached
	if d := time.Until(ep.expires); d < 29*time.Second || d > minBootstrapTTL {
		t.Fatalf("cached for %v, want the 30 s floor", d)
	}
	ep.expires = time.Now().Add(-time.Second)
	check(4) // re-resolved
	ep.expires = time.Now().Add(-time.Second)
	broken.Store(true)
	check(6) // failed, old addresses kept

	fresh, _ := newEndpoint("dns.example", 853, Options{Bootstrap: boot})
	if _, err := fresh.resolve(context.Background()); !errors.Is(err, errBroken) {
		t.Fatalf("err = %v, want the bootstrap's", err)
	}
}
