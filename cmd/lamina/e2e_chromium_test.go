package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
)

// chromium runs headless Chromium inside the client namespace, trusting
// Lamina's CA and the corp CA, with policy (JSON, may be empty) as its only
// managed policy: /etc/chromium/policies/managed is replaced by a private
// tmpfs in a mount namespace of its own, so that no other test's policy is
// seen and none is left behind.
func (e *e2eLab) chromium(t *testing.T, policy string, args ...string) ([]byte, error) {
	t.Helper()
	chromium := testenv.Tool(t, "chromium")
	certutil := testenv.Tool(t, "certutil")
	home := t.TempDir()
	nss := filepath.Join(home, ".pki", "nssdb")
	os.MkdirAll(nss, 0o700)
	for _, c := range [][]string{
		{"-d", "sql:" + nss, "-N", "--empty-password"},
		{"-d", "sql:" + nss, "-A", "-t", "C,,", "-n", "lamina", "-i", filepath.Join(e.dir, "state", "tls", "ca.pem")},
		{"-d", "sql:" + nss, "-A", "-t", "C,,", "-n", "corp", "-i", filepath.Join(e.dir, "app-ca.pem")},
	} {
		if out, err := exec.Command(certutil, c...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", c, err, out)
		}
	}
	const policyDir = "/etc/chromium/policies/managed"
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pfile := filepath.Join(home, "policy.json")
	os.WriteFile(pfile, []byte(policy), 0o644)
	script := "mount -t tmpfs tmpfs " + policyDir + " && "
	if policy != "" {
		script += "cp " + pfile + " " + policyDir + "/lamina.json && "
	}
	script += `exec "$0" "$@"`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"netns", "exec", e.lab.CL, "unshare", "-m", "sh", "-c", script, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, e.ip, full...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("chromium: %v\n%.3000s", err, stderr.String())
	}
	return out, err
}

// TestE2EChromium: headless Chromium (1) with DoH in secure mode pointed at
// Lamina resolves app.corp.example to the internal address, answered
// through the tunnel; (2) with Lamina's SOCKS5 listener as its proxy loads
// https://app.corp.example/ from nginx behind the gateway; (3) renders the
// status page, which shows the tunnel's live SAs (screenshot kept in the
// test's log directory when it fails).
func TestE2EChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	t.Parallel()
	e := startE2E(t)

	// (1) DoH in secure mode. There is no route to 10.200.0.80 outside the
	// tunnel, so the page cannot load; the net log shows what Chromium
	// resolved and where it tried to connect.
	before := e.layers(t)
	netlog := filepath.Join(t.TempDir(), "netlog.json")
	e.chromium(t, `{"DnsOverHttpsMode": "secure", "DnsOverHttpsTemplates": "https://127.0.0.1:8443/dns-query{?dns}"}`,
		"--log-net-log="+netlog, "--net-log-capture-mode=Everything", "--timeout=15000", "--dump-dom", "https://app.corp.example/")
	nl, _ := os.ReadFile(netlog)
	if !bytes.Contains(nl, []byte("app.corp.example")) || !bytes.Contains(nl, []byte(appAddr.String())) {
		t.Errorf("Chromium's net log has no resolution of app.corp.example to %v (%d bytes)", appAddr, len(nl))
	}
	if bytes.Contains(nl, []byte(decoyAddr)) {
		t.Errorf("Chromium saw the public answer %s", decoyAddr)
	}
	after := e.layers(t)
	dohQueries := func(v layersView) uint64 {
		for _, c := range v.Clients {
			if c.Listener == "doh" {
				return c.Queries
			}
		}
		return 0
	}
	if dohQueries(after) <= dohQueries(before) {
		t.Errorf("Chromium sent no query to Lamina's DoH listener")
	}
	// Chromium asks for other names too (they go to the default route);
	// corp.example never does, as the decoy's absence above shows.

	// (2) The page through Lamina's SOCKS5 proxy and the tunnel.
	loaded := func(dom []byte) bool {
		return strings.Contains(string(dom), "app.corp.example behind the gateway") && strings.Contains(string(dom), "line 100")
	}
	dom, _ := e.chromium(t, "", "--proxy-server=socks5://127.0.0.1:1080", "--dump-dom", "https://app.corp.example/")
	if !loaded(dom) {
		// Seen once with every process built with -race and the e2e
		// tests in parallel: Chromium gave up on the page. One more try;
		// the proxy's counters below still have to show the traffic.
		t.Logf("page through the proxy not loaded on the first try (%d bytes of DOM); trying again", len(dom))
		dom, _ = e.chromium(t, "", "--proxy-server=socks5://127.0.0.1:1080", "--dump-dom", "https://app.corp.example/")
	}
	if !strings.Contains(string(dom), "app.corp.example behind the gateway") || !strings.Contains(string(dom), "line 100") {
		t.Errorf("page through the proxy not loaded; DOM:\n%.2000s", dom)
	}
	v := e.layers(t)
	if v.Proxies[0].TLS == 0 {
		t.Errorf("no TLS connection through the proxy: %+v", v.Proxies[0])
	}

	// (3) The status page: DOM shows the live SPIs; a screenshot is taken.
	dom, _ = e.chromium(t, "", "--dump-dom", "http://127.0.0.1:9153/status.html")
	v = e.layers(t)
	for _, sa := range v.Tunnels[0].SAs {
		if !strings.Contains(string(dom), sa.SPI) {
			t.Errorf("status page lacks SA %s:\n%.3000s", sa.SPI, dom)
		}
	}
	shot := filepath.Join(e.dir, "status.png")
	e.chromium(t, "", "--window-size=1200,1000", "--screenshot="+shot, "http://127.0.0.1:9153/status.html")
	if png, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
		t.Errorf("status page screenshot: %v, %d bytes", err, len(png))
	} else if dir := os.Getenv("LAMINA_E2E_ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "status.png"), png, 0o644)
	}
}
