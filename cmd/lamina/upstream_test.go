package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestEncryptedUpstreams forwards through one Lamina to another over each
// encrypted transport, one zone per transport, verifying the server's
// certificate with its local CA; the DoT group requires ECH with the config
// list taken from the server's own SVCB record.
func TestEncryptedUpstreams(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sUDP, sTLS, sDoH := freeAddr(t), freeAddr(t), freeAddr(t)
	scfg := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(scfg, []byte(fmt.Sprintf(`
listeners:
  - {url: "udp://%[1]s"}
  - {url: "tls://%[2]s"}
  - {url: "quic://%[2]s"}
  - {url: "https://%[3]s"}
  - {url: "h3://%[3]s"}
resolver: {service_name: dns.lamina.test}
tls: {ech: {public_name: public.lamina.test}}
local_zones: [{name: up.test, records: ["* IN TXT served-by-the-server"]}]
`, sUDP, sTLS, sDoH)), 0o644); err != nil {
		t.Fatal(err)
	}
	startLamina(t, sUDP, "-config", scfg)
	ca := filepath.Join(dir, "lamina-state", "tls", "ca.pem")
	ech := base64.StdEncoding.EncodeToString(echFromSVCB(t, sUDP))

	addr := freeAddr(t)
	common := fmt.Sprintf(`server_name: dns.lamina.test, ca_file: %q`, ca)
	ccfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%[1]s"}]
cache: {disable: true}
upstream_groups:
  - {name: dot, upstreams: ["tls://%[2]s"], %[4]s, ech: require, ech_config: %[5]q}
  - {name: doq, upstreams: ["quic://%[2]s"], %[4]s}
  - {name: doh, upstreams: ["https://%[3]s/dns-query"], %[4]s}
  - {name: doh3, upstreams: ["h3://%[3]s/dns-query"], %[4]s}
routes:
  - {zone: t.up.test, group: dot}
  - {zone: q.up.test, group: doq}
  - {zone: h.up.test, group: doh}
  - {zone: h3.up.test, group: doh3}
`, addr, sTLS, sDoH, common, ech))
	p := startLamina(t, addr, "-config", ccfg)
	for _, zone := range []string{"t", "q", "h", "h3"} {
		name := "x." + zone + ".up.test"
		r := mustExchange(t, addr, "udp", name, dns.TypeTXT)
		if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "served-by-the-server") {
			t.Errorf("%s: %s %v", name, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
	m := p.metrics(t)
	for _, u := range []string{"tls://", "quic://", "https://", "h3://"} {
		if !regexp.MustCompile(`lamina_upstream_exchanges_total\{result="ok",upstream="` + regexp.QuoteMeta(u) + `[^"]*"\} 1`).MatchString(m) {
			t.Errorf("no ok exchange counted for the %s upstream", u)
		}
	}
	if !regexp.MustCompile(`lamina_upstream_connections_total\{ech="true",upstream="tls://[^"]*"\} [1-9]`).MatchString(m) {
		t.Error("the DoT upstream connection did not use ECH")
	}
}
