package doh

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// policyDir is where Chromium on Debian reads managed policies; it has no
// per-profile way to force DoH.
const policyDir = "/etc/chromium/policies/managed"

// TestChromium: headless Chromium with DoH in secure mode pointing at Lamina
// and the test CA in its NSS database loads a page from a local HTTPS server
// whose name only Lamina can resolve, over ECH with the config Lamina served
// in the site's HTTPS record.
func TestChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := testenv.Tool(t, "chromium")
	certutil := testenv.Tool(t, "certutil")
	testenv.Root(t)
	e := start(t, true, Config{})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pagePort := ln.Addr().(*net.TCPAddr).Port
	// The site publishes its ECH config in an HTTPS record (RFC 9460 §2.3
	// names it _PORT._https for a non-default port), as a CDN would.
	self := e.h.Self
	e.h.Self = func() []dns.RR {
		rr := &dns.HTTPS{SVCB: dns.SVCB{
			Hdr:      dns.RR_Header{Name: "_" + strconv.Itoa(pagePort) + "._https." + tlsconftest.SiteName, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: 60},
			Priority: 1, Target: tlsconftest.SiteName,
			Value: []dns.SVCBKeyValue{&dns.SVCBAlpn{Alpn: []string{"h2"}}, &dns.SVCBECHConfig{ECH: e.p.ECHConfigList()}}}}
		return append(self(), rr)
	}
	page := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			ech := r.TLS != nil && r.TLS.ECHAccepted
			w.Write([]byte("<html><body><p id=x>served to " + r.Host + " via lamina, ech=" + strconv.FormatBool(ech) + "</p></body></html>"))
		}),
		TLSConfig: e.p.ServerConfig(tlsconf.DoH),
	}
	go page.ServeTLS(ln, "", "")
	defer page.Close()

	// The IP template makes Chromium send no SNI, like dig: the default
	// certificate's IP SAN must verify.
	policy := filepath.Join(policyDir, "lamina-test-"+strconv.Itoa(os.Getpid())+".json")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl := "https://127.0.0.1:" + strconv.Itoa(e.port) + "/dns-query{?dns}"
	if err := os.WriteFile(policy, []byte(`{"DnsOverHttpsMode": "secure", "DnsOverHttpsTemplates": "`+tmpl+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(policy)

	home := t.TempDir()
	nss := "sql:" + filepath.Join(home, ".pki", "nssdb")
	os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700)
	tlsconftest.Run(t, certutil, "-d", nss, "-N", "--empty-password")
	tlsconftest.Run(t, certutil, "-d", nss, "-A", "-t", "C,,", "-n", "lamina-test", "-i", e.p.CAFile())

	url := "https://site.example.test:" + strconv.Itoa(pagePort) + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--dump-dom", url)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		t.Logf("chromium: %v", err)
	}
	if !strings.Contains(string(out), "served to site.example.test:") {
		t.Fatalf("page not loaded; DOM:\n%s", out)
	}
	// Chromium took the site's ECH config from Lamina's answer and used it.
	if !strings.Contains(string(out), "ech=true") {
		t.Errorf("page loaded without ECH:\n%s", out)
	}
	var viaDoH bool
	for _, s := range e.h.Seen() {
		if s.Name == tlsconftest.SiteName && s.Transport == resolver.HTTPS {
			viaDoH = true
		}
	}
	if !viaDoH {
		t.Errorf("Chromium did not resolve %s through Lamina's DoH listener: %+v", tlsconftest.SiteName, e.h.Seen())
	}
}
