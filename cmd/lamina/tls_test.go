package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// echFromSVCB asks Lamina for its DDR record and returns the ech value.
func echFromSVCB(t *testing.T, addr string) []byte {
	t.Helper()
	r := mustExchange(t, addr, "udp", "_dns.resolver.arpa", dns.TypeSVCB)
	for _, rr := range r.Answer {
		if svcb, ok := rr.(*dns.SVCB); ok {
			for _, kv := range svcb.Value {
				if e, ok := kv.(*dns.SVCBECHConfig); ok {
					return e.ECH
				}
			}
		}
	}
	t.Fatalf("no ech in the SVCB answer: %v", r)
	return nil
}

// dotQuery sends one query over DoT with ECH and reports whether ECH was
// accepted.
func dotQuery(t *testing.T, addr, caFile string, ech []byte, name string) (*dns.Msg, bool) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs:                        pool,
		ServerName:                     "dns.lamina.test",
		NextProtos:                     []string{"dot"},
		EncryptedClientHelloConfigList: ech,
		MinVersion:                     tls.VersionTLS13,
	})
	if err != nil {
		t.Fatalf("DoT handshake: %v", err)
	}
	defer conn.Close()
	c := &dns.Conn{Conn: conn}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if err := c.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	r, err := c.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	return r, conn.ConnectionState().ECHAccepted
}

// TestDoTWithECH serves DoT with a generated CA and ECH: kdig gets an answer,
// a Go client that takes the ECHConfigList from Lamina's own DDR record gets
// ECH accepted, and after `lamina ech keygen` and SIGHUP the new key is
// published while the old one is still accepted.
func TestDoTWithECH(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	udp, dot := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "lamina.yaml")
	text := fmt.Sprintf(`
listeners:
  - {url: "udp://%s"}
  - {url: "tls://%s"}
resolver: {service_name: dns.lamina.test}
tls:
  ech: {public_name: public.lamina.test}
local_zones: [{name: lab.test, records: ["a IN A 10.0.0.1"]}]
`, udp, dot)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLamina(t, udp, "-config", cfg)
	m := regexp.MustCompile(`ca_file=(\S+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("CA path not logged:\n%s", p.out)
	}
	ca := m[1]
	if ca != filepath.Join(dir, "lamina-state", "tls", "ca.pem") {
		t.Errorf("CA at %s, want it in lamina-state next to the config", ca)
	}

	if out := kdig(t, dot, "+tls-ca="+ca, "+tls-hostname=dns.lamina.test", "+short", "a.lab.test"); strings.TrimSpace(out) != "10.0.0.1" {
		t.Errorf("kdig over DoT: %q", out)
	}
	oldECH := echFromSVCB(t, udp)
	if r, ok := dotQuery(t, dot, ca, oldECH, "a.lab.test"); !ok || len(r.Answer) != 1 {
		t.Errorf("DoT with ECH from the SVCB record: accepted=%v answer=%v", ok, r)
	}

	out, err := exec.Command(laminaBin, "ech", "keygen", "-config", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("lamina ech keygen: %v\n%s", err, out)
	}
	newList, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("keygen output %q: %v", out, err)
	}
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 5*time.Second)
	if got := echFromSVCB(t, udp); string(got) != string(newList) {
		t.Error("after keygen and SIGHUP the SVCB record does not carry the new ECHConfigList")
	}
	if _, ok := dotQuery(t, dot, ca, newList, "a.lab.test"); !ok {
		t.Error("new ECH key not accepted")
	}
	if _, ok := dotQuery(t, dot, ca, oldECH, "a.lab.test"); !ok {
		t.Error("previous ECH key not accepted during its grace period")
	}
}
