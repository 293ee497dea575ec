package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestFailoverUnderLoad is issue 5's failover case over an encrypted
// transport: dnsperf runs against a Lamina whose failover group holds two DoT
// upstreams (two more Laminas); the first dies in the middle of the run and
// comes back. No query may be lost or answered SERVFAIL, and once the first
// upstream is back (probed up) it is used again.
func TestFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state") // one local CA for both servers
	server := func(name, ip string) (cfg, udp, dot string) {
		udp, dot = freeAddr(t), freeAddr(t)
		cfg = filepath.Join(dir, name+".yaml")
		text := fmt.Sprintf(`
listeners: [{url: "udp://%s"}, {url: "tls://%s"}]
resolver: {service_name: dns.lamina.test}
tls: {state_dir: %q}
local_zones: [{name: fo.test, records: ["* IN A %s"]}]
`, udp, dot, state, ip)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return cfg, udp, dot
	}
	aCfg, aUDP, aDoT := server("a", "10.0.0.1")
	bCfg, bUDP, bDoT := server("b", "10.0.0.2")
	a := startLamina(t, aUDP, "-config", aCfg)
	startLamina(t, bUDP, "-config", bCfg)

	addr := freeAddr(t)
	ccfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
cache: {disable: true}
upstream_groups:
  - {name: g, strategy: failover, upstreams: ["tls://%s", "tls://%s"], server_name: dns.lamina.test, ca_file: %q, timeout: 2s}
routes: [{zone: ., group: g}]
`, addr, aDoT, bDoT, filepath.Join(state, "tls", "ca.pem")))
	client := startLamina(t, addr, "-config", ccfg)
	answer := func() string {
		r := mustExchange(t, addr, "udp", "x.fo.test", dns.TypeA)
		if len(r.Answer) != 1 {
			return dns.RcodeToString[r.Rcode]
		}
		return r.Answer[0].(*dns.A).A.String()
	}
	if got := answer(); got != "10.0.0.1" {
		t.Fatalf("before the failure: answered by %s, want the first upstream", got)
	}

	var queries strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&queries, "n%d.fo.test A\n", i)
	}
	qfile := filepath.Join(dir, "queries")
	if err := os.WriteFile(qfile, []byte(queries.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	perf := startDnsperf(t, addr, qfile, "-Q", "400", "-l", "6", "-t", "3")

	time.Sleep(1500 * time.Millisecond)
	a.cmd.Process.Kill() // the first upstream dies mid-run
	<-a.done
	time.Sleep(2 * time.Second)
	startLamina(t, aUDP, "-config", aCfg) // and comes back on the same address

	perf.wait(t, 30*time.Second, 1000, "across the failure and recovery")
	// The second upstream did take over while the first was down.
	okB := regexp.MustCompile(`lamina_upstream_exchanges_total\{result="ok",upstream="tls://` + regexp.QuoteMeta(bDoT) + `"\} (\d+)`).FindStringSubmatch(client.metrics(t))
	if okB == nil || atoi(okB[1]) == 0 {
		t.Errorf("the second upstream answered nothing during the failure: %v", okB)
	}
	// The recovered upstream is probed up and preferred again.
	deadline := time.Now().Add(40 * time.Second)
	for answer() != "10.0.0.1" {
		if time.Now().After(deadline) {
			t.Fatal("the recovered first upstream was not used again within 40 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
