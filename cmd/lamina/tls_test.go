package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go/http3"

	"github.com/laminadns/lamina/internal/testenv"
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

// TestEncryptedTransports serves one local zone over DoT, DoH (HTTP/2 POST
// and GET, HTTP/3) and DoQ, queried with kdig and, for HTTP/3, quic-go's
// client; dnsperf then runs over DoT and DoH without losing a query.
func TestEncryptedTransports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	udp, dotAddr, doh := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "lamina.yaml")
	text := fmt.Sprintf(`
listeners:
  - {url: "udp://%[1]s"}
  - {url: "tls://%[2]s"}
  - {url: "quic://%[2]s"}
  - {url: "https://%[3]s"}
  - {url: "h3://%[3]s/dns-query"}
resolver: {service_name: dns.lamina.test}
local_zones: [{name: lab.test, records: ["a IN A 10.0.0.1", "* IN A 10.0.0.2"]}]
`, udp, dotAddr, doh)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startLamina(t, udp, "-config", cfg)
	ca := filepath.Join(dir, "lamina-state", "tls", "ca.pem")
	tlsArgs := []string{"+tls-ca=" + ca, "+tls-hostname=dns.lamina.test", "+short"}
	for _, c := range []struct {
		name, addr string
		args       []string
	}{
		{"DoT", dotAddr, []string{"+tls"}},
		{"DoH POST", doh, []string{"+https"}},
		{"DoH GET", doh, []string{"+https-get"}},
		{"DoQ", dotAddr, []string{"+quic"}}, // +quic after the +tls-* options
	} {
		args := append(append(append([]string{}, tlsArgs...), c.args...), "a.lab.test")
		if out := kdig(t, c.addr, args...); strings.TrimSpace(out) != "10.0.0.1" {
			t.Errorf("kdig %s: %q", c.name, out)
		}
	}

	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "dns.lamina.test"}}
	defer tr.Close()
	q := new(dns.Msg)
	q.SetQuestion("a.lab.test.", dns.TypeA)
	q.Id = 0
	wire, _ := q.Pack()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + doh + "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(wire))
	if err != nil {
		t.Fatalf("DoH over HTTP/3: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := new(dns.Msg)
	if err := r.Unpack(body); err != nil || resp.ProtoMajor != 3 || len(r.Answer) != 1 {
		t.Errorf("DoH over HTTP/3: %s %v %v", resp.Proto, err, r)
	}

	dnsperf := testenv.Tool(t, "dnsperf")
	var qs strings.Builder
	for i := range 200 {
		fmt.Fprintf(&qs, "n%d.lab.test A\n", i)
	}
	qfile := filepath.Join(dir, "queries")
	os.WriteFile(qfile, []byte(qs.String()), 0o644)
	for _, mode := range []struct{ m, addr string }{{"dot", dotAddr}, {"doh", doh}} {
		host, port, _ := net.SplitHostPort(mode.addr)
		out, err := exec.Command(dnsperf, "-m", mode.m, "-s", host, "-p", port, "-d", qfile, "-Q", "300", "-l", "2", "-t", "3").CombinedOutput()
		if err != nil {
			t.Fatalf("dnsperf -m %s: %v\n%s", mode.m, err, out)
		}
		lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindStringSubmatch(string(out))
		done := regexp.MustCompile(`Queries completed:\s+(\d+)`).FindStringSubmatch(string(out))
		if lost == nil || done == nil || lost[1] != "0" || atoi(done[1]) < 300 {
			t.Errorf("dnsperf -m %s:\n%s", mode.m, out)
		}
	}
	m := p.metrics(t)
	for _, tr := range []string{"tls", "https", "h3", "quic"} {
		if !strings.Contains(m, `transport="`+tr+`"`) {
			t.Errorf("no queries counted for transport %s", tr)
		}
	}
}
