package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TestTLSVerification: the per-test CA by file or pool is accepted, the
// system roots are not, an SPKI pin must match.
func TestTLSVerification(t *testing.T) {
	pki, other := newPKI(t), newPKI(t)
	srv := startServer(t)
	url := "tls://" + srv.startDoT(t, pki.serverConfig("dot")).String()
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"CA pool", pki.clientOptions(), true},
		{"CA file", Options{CAFile: pki.caFile}, true},
		{"system roots", Options{}, false},
		{"other CA", Options{CAFile: other.caFile}, false},
		{"pin match", Options{CAFile: pki.caFile, PinSHA256: []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SPKIPin(pki.leaf)}}, true},
		{"pin mismatch", Options{CAFile: pki.caFile, PinSHA256: []string{SPKIPin(other.leaf)}}, false},
		{"wrong name", Options{CAFile: pki.caFile, ServerName: "other.test"}, false},
		{"right name", Options{CAFile: pki.caFile, ServerName: "dns.test"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := Parse(url, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			_, err = u.Exchange(context.Background(), query("www.example.", dns.TypeA))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if tt.name == "pin mismatch" && !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("err = %v, want ErrPinMismatch", err)
			}
		})
	}
	for _, bad := range []Options{{CAFile: "/nonexistent"}, {PinSHA256: []string{"not base64"}}} {
		if u, err := Parse(url, bad); err == nil {
			u.Close()
			t.Errorf("Parse with %+v accepted", bad)
		}
	}
}

// TestBootstrap: a hostname upstream is resolved through the bootstrap
// upstream (never itself) or taken from fixed IPs, and verified against the
// hostname.
func TestBootstrap(t *testing.T) {
	pki := newPKI(t)
	boot := startServer(t)
	srv := startServer(t)
	_, port, _ := net.SplitHostPort(srv.startDoT(t, pki.serverConfig("dot")).String())
	dohURL := srv.startDoH(t, pki.serverConfig("h2"), srv.dohHandler)
	dohURL = strings.Replace(dohURL, "127.0.0.1", "dns.test", 1)
	for _, tt := range []struct {
		name string
		url  string
		opts func(o *Options)
	}{
		{"dot via bootstrap", "tls://dns.test:" + port, func(o *Options) { o.Bootstrap = NewUDP(boot.addr, Options{}) }},
		{"doh via bootstrap", dohURL, func(o *Options) { o.Bootstrap = NewUDP(boot.addr, Options{}) }},
		{"dot via fixed IP", "tls://dns.test:" + port, func(o *Options) { o.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := pki.clientOptions()
			tt.opts(&opts)
			if opts.Bootstrap != nil {
				defer opts.Bootstrap.Close()
			}
			before := boot.queries.Load()
			u, err := Parse(tt.url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if !strings.Contains(u.String(), "dns.test") {
				t.Errorf("String() = %s, want the hostname kept", u)
			}
			for range 3 {
				testRoundTrip(t, u, "www.example.", "192.0.2.1")
			}
			asked := boot.queries.Load() - before
			if opts.Bootstrap != nil && (asked < 2 || asked > 4) {
				// A and AAAA once (answers are cached for their TTL),
				// plus at most the ECH record lookups.
				t.Errorf("bootstrap asked %d times for 3 queries", asked)
			}
		})
	}
	if _, err := Parse("tls://dns.test:853", pki.clientOptions()); err == nil {
		t.Error("hostname without bootstrap or IPs accepted")
	}
}

// TestDoTResumption: the server closes the connection after each answer;
// the second connection resumes the TLS session (RFC 8446 §2.2).
func TestDoTResumption(t *testing.T) {
	pki := newPKI(t)
	var mu sync.Mutex
	var resumed []bool
	cfg := pki.serverConfig("dot")
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		mu.Lock()
		resumed = append(resumed, cs.DidResume)
		mu.Unlock()
		return nil
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := streamServer(t, l, func(n int, c net.Conn) {
		if req, err := readFrame(c); err == nil {
			writeFrame(c, answer(req, "192.0.2.1"))
		}
	})
	u, err := NewDoT(addr.String(), pki.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for range 3 {
		testRoundTrip(t, u, "www.example.", "192.0.2.1")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumed) < 2 || resumed[0] || !resumed[len(resumed)-1] {
		t.Fatalf("handshakes resumed: %v, want a full one then resumptions", resumed)
	}
}
