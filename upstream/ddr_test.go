package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestDiscoverDesignated: a Do53 server names its DoT and DoH endpoints
// (RFC 9462); those whose certificate covers the target name and the
// server's IP become upstreams, in priority order; a target the certificate
// does not cover is dropped.
func TestDiscoverDesignated(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t)
	_, dotPort, _ := net.SplitHostPort(srv.startDoT(t, pki.serverConfig("dot")).String())
	dohURL := srv.startDoH(t, pki.serverConfig("h2"), srv.dohHandler)
	_, dohPort, _ := net.SplitHostPort(strings.Split(strings.TrimPrefix(dohURL, "https://"), "/")[0])
	port := func(s string) uint16 { n, _ := strconv.Atoi(s); return uint16(n) }
	svcb := func(prio uint16, target string, kv ...dns.SVCBKeyValue) dns.RR {
		return &dns.SVCB{Hdr: dns.RR_Header{Name: "_dns.resolver.arpa.", Rrtype: dns.TypeSVCB, Class: dns.ClassINET, Ttl: 60},
			Priority: prio, Target: target, Value: kv}
	}
	records := []dns.RR{
		svcb(3, "other.test.", &dns.SVCBAlpn{Alpn: []string{"dot"}}, &dns.SVCBPort{Port: port(dotPort)}),
		svcb(2, "dns.test.", &dns.SVCBAlpn{Alpn: []string{"h2"}}, &dns.SVCBPort{Port: port(dohPort)},
			&dns.SVCBDoHPath{Template: "/dns-query{?dns}"}),
		svcb(1, "dns.test.", &dns.SVCBAlpn{Alpn: []string{"dot"}}, &dns.SVCBPort{Port: port(dotPort)}),
	}
	srv.ddr.Store(&records)

	plain := NewUDP(srv.addr, Options{})
	defer plain.Close()
	ups, err := DiscoverDesignated(context.Background(), plain, netip.MustParseAddr("127.0.0.1"), pki.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, u := range ups {
			u.Close()
		}
	}()
	var got []string
	for _, u := range ups {
		got = append(got, strings.SplitN(u.String(), ":", 2)[0])
		testRoundTrip(t, u, "www.example.", "192.0.2.1")
	}
	if strings.Join(got, ",") != "tls,https" {
		t.Fatalf("discovered %v, want tls then https", got)
	}

	empty := []dns.RR{}
	srv.ddr.Store(&empty)
	if _, err := DiscoverDesignated(context.Background(), plain, netip.MustParseAddr("127.0.0.1"), pki.clientOptions()); !errors.Is(err, ErrNoDesignated) {
		t.Fatalf("err = %v, want ErrNoDesignated", err)
	}
}
