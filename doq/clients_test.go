package doq

import (
	"net"
	"strings"
	"testing"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestKdig(t *testing.T) {
	testenv.Tool(t, "kdig")
	e := start(t, true, Config{})
	_, port, _ := net.SplitHostPort(e.addr)
	// +quic goes after the +tls-* options (kdig 3.2 misreads them otherwise).
	base := []string{"@127.0.0.1", "-p", port, "+tls-ca=" + e.p.CAFile(), "+tls-hostname=" + tlsconftest.ServiceName, "+quic"}
	out := tlsconftest.Run(t, "kdig", append(base, "site.example.test", "A")...)
	for _, w := range []string{"QUIC session", "status: NOERROR", "127.0.0.1", "Received 468 B"} {
		if !strings.Contains(out, w) {
			t.Fatalf("kdig +quic output lacks %q:\n%s", w, out)
		}
	}
	out = tlsconftest.Run(t, "kdig", append(base, "_dns."+tlsconftest.ServiceName, "SVCB")...)
	for _, w := range []string{"alpn=doq", "port=" + port, "ech="} {
		if !strings.Contains(out, w) {
			t.Fatalf("kdig +quic SVCB output lacks %q:\n%s", w, out)
		}
	}
	for _, s := range e.h.Seen() {
		if s.Transport != resolver.QUIC {
			t.Errorf("query over %v", s.Transport)
		}
	}
}
