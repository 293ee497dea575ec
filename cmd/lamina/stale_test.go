package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestServeStaleWhenNSDStops is issue 3's integration case: with the
// authoritative server gone, names already cached keep being answered from
// expired entries (RFC 8767: TTL 30, EDE 3 Stale Answer), and names never
// cached get SERVFAIL with an Extended DNS Error instead of hanging.
func TestServeStaleWhenNSDStops(t *testing.T) {
	t.Parallel()
	auth := startNSD(t, map[string]string{"stale.test.": "www 1 IN A 10.0.0.9\n"})
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
upstream_groups: [{name: g, upstreams: ["udp://%s"], timeout: 1s}]
routes: [{zone: ., group: g}]
cache: {serve_stale: true, max_stale: 1h}
`, addr, auth.addr))
	startLamina(t, addr, "-config", cfg)

	r := mustExchange(t, addr, "udp", "www.stale.test", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.9" {
		t.Fatalf("first answer: %v", r)
	}
	auth.Stop()
	time.Sleep(1500 * time.Millisecond) // the record's TTL of 1 s runs out

	r = mustExchange(t, addr, "udp", "www.stale.test", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.9" {
		t.Fatalf("cached name with NSD stopped: %v", r)
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != 30 {
		t.Errorf("stale answer TTL %d, want 30 (RFC 8767 §4)", ttl)
	}
	if code := ede(r); code != int(dns.ExtendedErrorCodeStaleAnswer) {
		t.Errorf("stale answer EDE %d, want %d", code, dns.ExtendedErrorCodeStaleAnswer)
	}

	start := time.Now()
	r = mustExchange(t, addr, "udp", "new.stale.test", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure || ede(r) < 0 {
		t.Fatalf("uncached name with NSD stopped: %s EDE %d, want SERVFAIL with an EDE", dns.RcodeToString[r.Rcode], ede(r))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("SERVFAIL took %v; the upstream timeout is 1 s", took)
	}
}
