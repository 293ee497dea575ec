package dot

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func port(e *env) string {
	_, p, _ := net.SplitHostPort(e.addr)
	return p
}

func TestKdig(t *testing.T) {
	testenv.Tool(t, "kdig")
	e := start(t, true, Config{})
	base := []string{"@127.0.0.1", "-p", port(e), "+tls-ca=" + e.p.CAFile(), "+tls-hostname=" + tlsconftest.ServiceName}
	out := tlsconftest.Run(t, "kdig", append(base, "site.example.test", "A")...)
	for _, w := range []string{"status: NOERROR", "127.0.0.1", "TLS", "PADDING"} {
		if !strings.Contains(out, w) {
			t.Fatalf("kdig output lacks %q:\n%s", w, out)
		}
	}
	// The self-advertisement decodes in an independent implementation.
	out = tlsconftest.Run(t, "kdig", append(base, "_dns."+tlsconftest.ServiceName, "SVCB")...)
	for _, w := range []string{"alpn=dot", "port=" + port(e), "ech="} {
		if !strings.Contains(out, w) {
			t.Fatalf("kdig SVCB output lacks %q:\n%s", w, out)
		}
	}
}

func TestDig(t *testing.T) {
	testenv.Tool(t, "dig")
	e := start(t, false, Config{})
	// dig sends no SNI: the default certificate must verify for the IP.
	out := tlsconftest.Run(t, "dig", "@127.0.0.1", "-p", port(e), "+tls", "+tls-ca="+e.p.CAFile(),
		"+padding=128", "site.example.test", "A")
	for _, w := range []string{"status: NOERROR", "127.0.0.1", "(TLS)", "MSG SIZE  rcvd: 468"} {
		if !strings.Contains(out, w) {
			t.Fatalf("dig output lacks %q:\n%s", w, out)
		}
	}
}

func TestDnsperf(t *testing.T) {
	testenv.Tool(t, "dnsperf")
	e := start(t, false, Config{})
	p, _ := strconv.Atoi(port(e))
	r := tlsconftest.Dnsperf(t, "dot", p, []string{"site.example.test A", "nope.example.test AAAA"},
		"-l", "2", "-Q", "500", "-c", "4")
	if r.Lost != 0 || r.Completed == 0 {
		t.Fatalf("dnsperf -m dot lost %d of %d:\n%s", r.Lost, r.Sent, r.Output)
	}
	t.Logf("dnsperf -m dot: %d completed, %.0f qps", r.Completed, r.QPS)
}
