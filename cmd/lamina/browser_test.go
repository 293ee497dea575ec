package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image/png"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/tlsconf"
)

// Names of the browser lab, as in the lab conventions of the ECH reference
// page. Only Lamina's local zone knows siteName.
const (
	siteName    = "site.example.test"
	siteECHName = "cdn.example.test" // the site's ECH public_name
	dohName     = "dns.example.test"
)

// chromiumPolicies is where Debian's Chromium reads managed policies.
const chromiumPolicies = "/etc/chromium/policies"

// browserLab is Lamina (DoH, a local zone for siteName, a SOCKS5 proxy on
// the host network) in front of an HTTPS site with its own CA and ECH key,
// and a HOME whose NSS database trusts both CAs, as Chromium on Linux wants.
type browserLab struct {
	lamina    *proc
	dir       string
	chromium  string
	home      string
	dohPort   int
	proxyPort int
	sitePort  int
}

func startBrowserLab(t *testing.T) *browserLab {
	testenv.Root(t) // a mount namespace hides other tests' Chromium policies (see run)
	b := &browserLab{dir: t.TempDir(), chromium: testenv.Tool(t, "chromium")}
	certutil := testenv.Tool(t, "certutil")
	testenv.Tool(t, "unshare")
	testenv.Tool(t, "mount")

	siteCA, echList := b.startSite(t)
	b.dohPort, b.proxyPort = testenv.FreePort(t), testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {name: doh, url: "https://127.0.0.1:%[1]d/dns-query"}
tls:
  state_dir: %[2]s/state
resolver:
  service_name: %[3]s
local_zones:
  - name: %[4]s
    records:
      - "@ 60 IN A 127.0.0.1"
      - "_%[5]d._https 60 IN HTTPS 1 %[4]s. alpn=h2 ech=%[6]s"
proxies:
  - {name: site-socks, address: "127.0.0.1:%[7]d", ports: [%[5]d]}
logging: {format: json, query_log: true}
`, b.dohPort, b.dir, dohName, siteName, b.sitePort, base64.StdEncoding.EncodeToString(echList), b.proxyPort))
	b.lamina = startLamina(t, "", "-config", cfg)

	b.home = filepath.Join(b.dir, "home")
	nss := filepath.Join(b.home, ".pki", "nssdb")
	if err := os.MkdirAll(nss, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		if out, err := exec.Command(certutil, append([]string{"-d", "sql:" + nss}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	run("-N", "--empty-password")
	run("-A", "-t", "C,,", "-n", "lamina", "-i", filepath.Join(b.dir, "state", "tls", "ca.pem"))
	run("-A", "-t", "C,,", "-n", "site", "-i", siteCA)
	return b
}

// startSite serves an HTML page naming the host and whether ECH was accepted
// on 127.0.0.1 with a certificate from a CA of its own, and returns that
// CA's file and the site's ECHConfigList.
func (b *browserLab) startSite(t *testing.T) (string, []byte) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "browser test site CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: siteName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{siteName, siteECHName}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(b.dir, "site-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	ech, err := tlsconf.GenerateECHKey(siteECHName, 7)
	if err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.sitePort = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, "<html><body><p id=x>lamina browser test page for %s ech=%v</p></body></html>",
				r.Host, r.TLS != nil && r.TLS.ECHAccepted)
		}),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
			EncryptedClientHelloKeys: []tls.EncryptedClientHelloKey{
				{Config: ech.Config, PrivateKey: ech.PrivateKey, SendAsRetry: true},
			},
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return caFile, tlsconf.MarshalECHConfigList(ech.Config)
}

// run starts headless Chromium with the flags that keep it off the closed
// network, a fresh profile and args. A non-empty doh template turns DoH on in
// secure mode through the profile's Local State (the prefs behind
// chrome://settings/security), so nothing is written to /etc. Any managed
// policy would override those prefs (package doh's test writes one while it
// runs), so when /etc/chromium/policies exists Chromium runs in a mount
// namespace of its own with an empty directory bound over it. It returns
// stdout; stderr is logged on failure.
func (b *browserLab) run(t *testing.T, doh string, args ...string) string {
	t.Helper()
	profile := t.TempDir()
	if doh != "" {
		state, _ := json.Marshal(map[string]any{"dns_over_https": map[string]string{"mode": "secure", "templates": doh}})
		if err := os.WriteFile(filepath.Join(profile, "Local State"), state, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]string{b.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile}, args...)
	if _, err := os.Stat(chromiumPolicies); err == nil {
		all = append([]string{"unshare", "--mount", "--propagation", "private", "--",
			"sh", "-c", `mount --bind "$0" ` + chromiumPolicies + ` && exec "$@"`, t.TempDir()}, all...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, all[0], all[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+b.home)
	// Chromium forks a zygote, renderers and a GPU process: end them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr syncBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("chromium %s: %v", args[len(args)-1], time.Since(start).Round(10*time.Millisecond))
	if err != nil || ctx.Err() != nil {
		t.Errorf("chromium: %v (context: %v)\n%s", err, ctx.Err(), lastLines(stderr.String(), 30))
	}
	return string(out)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// metricSum adds up the samples of a metric whose labels contain every one
// of labels (as `name="value"`).
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// layers fetches Lamina's /layers.
func (b *browserLab) layers(t *testing.T) layersView {
	t.Helper()
	resp, err := http.Get("http://" + b.lamina.admin + "/layers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v layersView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("/layers: %v", err)
	}
	return v
}

// queryLog returns the query types Lamina logged for name over transport.
func (b *browserLab) queryLog(name, transport string) map[string]bool {
	types := map[string]bool{}
	for line := range strings.Lines(b.lamina.out.String()) {
		var rec struct{ Log, Name, Type, Transport string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Log == "query" && rec.Name == name && rec.Transport == transport {
			types[rec.Type] = true
		}
	}
	return types
}

// TestBrowserChromium drives Debian's Chromium against the whole binary:
// DoH in secure mode to Lamina resolving a name only Lamina's local zone
// knows (issue 4), the same page through Lamina's SOCKS5 proxy with the
// name resolved by Lamina (issue 8), and a screenshot of the status page.
// The subtests share one Lamina and run one browser at a time.
func TestBrowserChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	b := startBrowserLab(t)
	// The premise: the system resolver does not know the site.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if addrs, err := net.DefaultResolver.LookupHost(ctx, siteName); err == nil {
		t.Fatalf("%s resolves without Lamina (%v): the test would prove nothing", siteName, addrs)
	}
	cancel()
	url := fmt.Sprintf("https://%s:%d/", siteName, b.sitePort)
	want := fmt.Sprintf("lamina browser test page for %s:%d", siteName, b.sitePort)

	t.Run("DoHSecure", func(t *testing.T) {
		before := metricSum(b.lamina.metrics(t), "lamina_queries_total", `transport="https"`)
		// A host name in the template, bootstrapped by a resolver rule,
		// as in the reference recipe: Chromium sends SNI dns.example.test.
		doh := fmt.Sprintf("https://%s:%d/dns-query{?dns}", dohName, b.dohPort)
		dom := b.run(t, doh, "--host-resolver-rules=MAP "+dohName+" 127.0.0.1", "--dump-dom", url)
		if !strings.Contains(dom, want) {
			t.Fatalf("page not loaded over DoH; DOM:\n%.3000s", dom)
		}
		// The site's HTTPS record came from Lamina's local zone with the
		// site's ECH config, and Chromium used it.
		if !strings.Contains(dom, "ech=true") {
			t.Errorf("page loaded without ECH: %.500s", dom)
		}
		after := metricSum(b.lamina.metrics(t), "lamina_queries_total", `transport="https"`)
		if after <= before {
			t.Errorf("lamina_queries_total{transport=\"https\"}: %v before, %v after", before, after)
		}
		for _, c := range b.layers(t).Clients {
			if c.Listener == "doh" && (len(c.Sessions) == 0 || c.Sessions[0].TLSVersion != "TLS 1.3") {
				t.Errorf("doh client layer: %+v", c)
			}
		}
		got := b.queryLog(siteName+".", "https")
		if !got["A"] {
			t.Errorf("query log has no A query for %s over DoH; types seen: %v", siteName, got)
		}
		t.Logf("DoH queries: %v → %v; %s types over DoH: %v; HTTPS at _%d._https: %v", before, after, siteName, got,
			b.sitePort, b.queryLog(fmt.Sprintf("_%d._https.%s.", b.sitePort, siteName), "https"))
	})

	t.Run("SOCKS5Proxy", func(t *testing.T) {
		m := b.lamina.metrics(t)
		lb := b.layers(t)
		ok := metricSum(m, "lamina_proxy_connections_total", `listener="site-socks"`, `result="ok"`)
		out := metricSum(m, "lamina_proxy_bytes_total", `listener="site-socks"`, `direction="out"`)
		// No DoH: with a SOCKS5 proxy Chromium sends the name to the proxy,
		// and only Lamina can resolve it.
		dom := b.run(t, "", fmt.Sprintf("--proxy-server=socks5://127.0.0.1:%d", b.proxyPort), "--dump-dom", url)
		if !strings.Contains(dom, want) {
			t.Fatalf("page not loaded through the SOCKS5 proxy; DOM:\n%.3000s", dom)
		}
		m = b.lamina.metrics(t)
		if got := metricSum(m, "lamina_proxy_connections_total", `listener="site-socks"`, `result="ok"`); got <= ok {
			t.Errorf("proxy connections ok: %v before, %v after", ok, got)
		}
		if got := metricSum(m, "lamina_proxy_bytes_total", `listener="site-socks"`, `direction="out"`); got <= out {
			t.Errorf("proxy bytes out: %v before, %v after", out, got)
		}
		// Chromium spoke TLS inside the proxied connection, on the host
		// network (this proxy has no tunnel).
		la := b.layers(t)
		if len(lb.Proxies) != 1 || len(la.Proxies) != 1 || la.Proxies[0].TLS <= lb.Proxies[0].TLS || la.Proxies[0].Path != "host network" {
			t.Errorf("proxy layer: before %+v, after %+v", lb.Proxies, la.Proxies)
		}
		// The proxy looked the name up in Lamina's own policy.
		if !strings.Contains(b.lamina.out.String(), `"name":"`+siteName+`."`) {
			t.Errorf("no lookup of %s in the query log", siteName)
		}
	})

	t.Run("StatusPage", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "status.png")
		b.run(t, "", "--screenshot="+file, "--window-size=1200,900", "--hide-scrollbars", "http://"+b.lamina.admin+"/status.html")
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot %s: %v", file, err)
		}
		r := img.Bounds()
		if r.Dx() < 600 || r.Dy() < 400 {
			t.Errorf("screenshot is %v", r)
		}
		// A rendered page has text and table borders: many pixels differ
		// from the background (the top-left corner).
		bg := img.At(r.Min.X, r.Min.Y)
		br, bgg, bb, _ := bg.RGBA()
		var other int
		for y := r.Min.Y; y < r.Max.Y; y += 2 {
			for x := r.Min.X; x < r.Max.X; x += 2 {
				if cr, cg, cb, _ := img.At(x, y).RGBA(); cr != br || cg != bgg || cb != bb {
					other++
				}
			}
		}
		if other < 500 {
			t.Errorf("screenshot %s is nearly blank: %d sampled pixels differ from the background", file, other)
		}
		t.Logf("status page screenshot: %s (%v, %d sampled pixels not background)", file, r, other)
	})
}
