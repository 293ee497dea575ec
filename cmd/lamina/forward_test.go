package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDefaultConfigAnswers runs the built-in configuration (only its listeners,
// admin and upstreams moved so that nothing leaves the machine) and queries
// its local names with kdig over UDP and TCP.
func TestDefaultConfigAnswers(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	dead := freeAddr(t) // nothing listens: forwarded names fail fast
	p := startLamina(t, addr, "-listen", "udp://"+addr, "-listen", "tcp://"+addr, "-upstream", "udp://"+dead)

	if out := kdig(t, addr, "+short", "router.home.arpa"); strings.TrimSpace(out) != "192.168.1.1" {
		t.Errorf("router.home.arpa = %q", out)
	}
	if out := kdig(t, addr, "+tcp", "+short", "_ipp._tcp.home.arpa", "SRV"); !strings.Contains(out, "631 printer.home.arpa.") {
		t.Errorf("SRV over TCP = %q", out)
	}
	if out := kdig(t, addr, "+short", "nas.home.arpa", "HTTPS"); !strings.Contains(out, "alpn=h2") {
		t.Errorf("HTTPS = %q", out)
	}
	if out := kdig(t, addr, "+short", "-x", "192.168.1.10"); strings.TrimSpace(out) != "nas.home.arpa." {
		t.Errorf("PTR = %q", out)
	}
	if out := kdig(t, addr, "+short", "localhost"); strings.TrimSpace(out) != "127.0.0.1" {
		t.Errorf("localhost = %q", out)
	}
	if out := kdig(t, addr, "missing.home.arpa"); !strings.Contains(out, "NXDOMAIN") || !strings.Contains(out, " aa") {
		t.Errorf("missing.home.arpa:\n%s", out)
	}
	// The upstream is down: SERVFAIL with an EDE, not a hang.
	r := mustExchange(t, addr, "udp", "example.com", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure || ede(r) < 0 {
		t.Errorf("forwarded name with no upstream: rcode %s, EDE %d", dns.RcodeToString[r.Rcode], ede(r))
	}
	resp, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Listeners) != 2 || st.Listeners[0].Encryption != "none" || st.Cache == nil ||
		len(st.Routes) != 1 || st.Routes[0].Path != "host network" {
		t.Errorf("/status: %+v %v", st, err)
	}
	m := p.metrics(t)
	for _, want := range []string{`lamina_queries_total{qtype="A",rcode="NOERROR",transport="udp"}`, "go_goroutines", "process_resident_memory_bytes", "lamina_resolver_responses_total", "lamina_cache_entries"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestSplitHorizonUDPTCP routes corp.example to one NSD and everything else
// to another, over UDP and TCP, and checks the answers come from the right one.
func TestSplitHorizonUDPTCP(t *testing.T) {
	t.Parallel()
	corp := startNSD(t, map[string]string{"corp.example.": "www IN A 10.1.0.1\n"})
	pub := startNSD(t, map[string]string{"example.": "www IN A 192.0.2.80\nwww.corp IN A 192.0.2.66\n"})
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {url: "udp://%[1]s"}
  - {url: "tcp://%[1]s"}
upstream_groups:
  - {name: corp, upstreams: ["udp://%[2]s"]}
  - {name: public, upstreams: ["udp://%[3]s"]}
routes:
  - {zone: corp.example, group: corp}
  - {zone: ., group: public}
`, addr, corp.addr, pub.addr))
	startLamina(t, addr, "-config", cfg)

	for _, proto := range []string{"+notcp", "+tcp"} {
		if out := kdig(t, addr, proto, "+short", "www.corp.example"); strings.TrimSpace(out) != "10.1.0.1" {
			t.Errorf("%s www.corp.example = %q, want the corp NSD's 10.1.0.1", proto, out)
		}
		if out := kdig(t, addr, proto, "+short", "www.example"); strings.TrimSpace(out) != "192.0.2.80" {
			t.Errorf("%s www.example = %q, want the public NSD's answer", proto, out)
		}
	}
	// A name the corp NSD does not have is its NXDOMAIN, never the public one's.
	if r := mustExchange(t, addr, "udp", "nope.corp.example", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("nope.corp.example: %s", dns.RcodeToString[r.Rcode])
	}
}

// TestTruncationFallback serves an RRset too big for UDP: Lamina gets TC from
// NSD and retries over TCP, then answers kdig with TC over UDP; kdig's own
// fallback to TCP gets the whole set.
func TestTruncationFallback(t *testing.T) {
	t.Parallel()
	var zone strings.Builder
	for i := range 40 {
		fmt.Fprintf(&zone, "big IN TXT \"record %02d %s\"\n", i, strings.Repeat("x", 80))
	}
	auth := startNSD(t, map[string]string{"tc.test.": zone.String()})
	addr := freeAddr(t)
	startLamina(t, addr, "-listen", "udp://"+addr, "-listen", "tcp://"+addr, "-upstream", "udp://"+auth.addr)

	out := kdig(t, addr, "+ignore", "+bufsize=1232", "big.tc.test", "TXT")
	if !regexp.MustCompile(`(?i)flags: [^;]*\btc\b`).MatchString(out) {
		t.Errorf("UDP answer without TC:\n%s", out)
	}
	out = kdig(t, addr, "+bufsize=1232", "big.tc.test", "TXT") // kdig retries over TCP on TC
	if n := strings.Count(out, "\"record "); n != 40 {
		t.Errorf("after fallback got %d TXT records, want 40:\n%s", n, out)
	}
	if r := mustExchange(t, addr, "tcp", "big.tc.test", dns.TypeTXT); len(r.Answer) != 40 || r.Truncated {
		t.Errorf("TCP: %d records, tc=%v", len(r.Answer), r.Truncated)
	}
}

// TestFailover stops the first NSD of a failover group mid-test: queries keep
// being answered, by the second.
func TestFailover(t *testing.T) {
	t.Parallel()
	a := startNSD(t, map[string]string{"fo.test.": "* IN TXT \"a\"\n"})
	b := startNSD(t, map[string]string{"fo.test.": "* IN TXT \"b\"\n"})
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
upstream_groups:
  - {name: g, strategy: failover, try_timeout: 300ms, upstreams: ["udp://%s", "udp://%s"]}
routes: [{zone: ., group: g}]
`, addr, a.addr, b.addr))
	startLamina(t, addr, "-config", cfg)

	txt := func(i int) (string, int) {
		r, err := exchange(addr, "udp", fmt.Sprintf("q%d.fo.test", i), dns.TypeTXT)
		if err != nil {
			return "", -1
		}
		if len(r.Answer) == 0 {
			return "", r.Rcode
		}
		return r.Answer[0].(*dns.TXT).Txt[0], r.Rcode
	}
	for i := range 5 {
		if got, _ := txt(i); got != "a" {
			t.Fatalf("q%d answered by %q, want the first NSD", i, got)
		}
	}
	a.Stop()
	// The first query after the stop may take the try timeout; every one must
	// be answered by b.
	start := time.Now()
	for i := 100; i < 120; i++ {
		got, rcode := txt(i)
		if got != "b" {
			t.Errorf("q%d after stopping the first NSD: %q rcode %d, want b", i, got, rcode)
		}
	}
	t.Logf("20 queries after failover took %v", time.Since(start))
}
