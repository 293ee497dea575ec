package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

// Internal addresses behind the gateway, inside iketest.Internal.
var (
	corpDNS = netip.MustParseAddr("10.200.0.54")
	appAddr = netip.MustParseAddr("10.200.0.80")
)

// decoyAddr is what a public server answers for the internal name: seeing
// it would mean the internal zone leaked to the default route.
const decoyAddr = "203.0.113.66"

// e2eLab is the whole story of issue 8: a strongSwan gateway with NSD
// (corp.example) and nginx (app.corp.example) behind it, and Lamina in the
// client namespace with DoH, a SOCKS5 proxy and a tunnel to the gateway.
type e2eLab struct {
	lab    *iketest.Lab
	ip     string
	dir    string
	bundle string // Lamina's CA and nginx's certificate
	page   []byte
	out    *syncBuffer
	pid    int // lamina's
}

func (e *e2eLab) in(args ...string) *exec.Cmd {
	return exec.Command(e.ip, append([]string{"netns", "exec", e.lab.CL}, args...)...)
}

// layers fetches Lamina's /layers from inside the client namespace.
func (e *e2eLab) layers(t testing.TB) layersView {
	t.Helper()
	b, err := e.in("curl", "-sS", "--max-time", "5", "http://127.0.0.1:9153/layers").Output()
	if err != nil {
		t.Fatalf("GET /layers: %v", err)
	}
	var v layersView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("/layers: %v\n%s", err, b)
	}
	return v
}

// kdig asks Lamina for app.corp.example over UDP and returns kdig's output.
func (e *e2eLab) kdig(t testing.TB) string {
	b, _ := e.in(testenv.Tool(t, "kdig"), "@127.0.0.1", "-p", "5353", "+time=5", "+retry=0", "+edns", "app.corp.example", "A").CombinedOutput()
	return string(b)
}

func startE2E(t testing.TB) *e2eLab {
	testenv.Root(t)
	e := &e2eLab{ip: testenv.Tool(t, "ip"), dir: t.TempDir(), out: &syncBuffer{}}
	nginx := testenv.Tool(t, "nginx")
	testenv.Tool(t, "curl")
	testenv.Tool(t, "kdig")
	e.lab = iketest.Start(t, iketest.Gateway{
		Proposals:    "aes256gcm16-prfsha256-x25519",
		ESPProposals: "aes256gcm16",
		PSK:          "lamina-e2e-psk-0123456789",
		LocalID:      "gw.example",
		RemoteID:     "resolver.example",
		Pool:         true,
	})
	for _, a := range []netip.Addr{corpDNS, appAddr} {
		if out, err := exec.Command(e.ip, "-n", e.lab.GW, "addr", "add", a.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %v: %v\n%s", a, err, out)
		}
	}
	testenv.StartNSD(t, testenv.NSDConfig{
		Zones: map[string]string{
			"corp.example.":          "app IN A " + appAddr.String() + "\nns IN A " + corpDNS.String() + "\n",
			"0.200.10.in-addr.arpa.": "80 IN PTR app.corp.example.\n",
		},
		Addr:   netip.AddrPortFrom(corpDNS, 53),
		Prefix: []string{e.ip, "netns", "exec", e.lab.GW},
	})
	// The default route's server also has a corp.example, as a public
	// resolver might: its answer must never reach a client.
	testenv.StartNSD(t, testenv.NSDConfig{
		Zones:  map[string]string{"corp.example.": "app IN A " + decoyAddr + "\n"},
		Addr:   netip.MustParseAddrPort("127.0.0.1:5399"),
		Prefix: []string{e.ip, "netns", "exec", e.lab.CL},
	})
	e.startNginx(t, nginx)
	e.startLamina(t)
	return e
}

// startNginx serves a page of known content over HTTPS on appAddr:443 in the
// gateway namespace, with a self-signed certificate for app.corp.example.
func (e *e2eLab) startNginx(t testing.TB, nginx string) {
	// A CA and a leaf it signs, as browsers want (a self-signed leaf is not
	// a trust anchor for Chromium).
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp.example test CA"},
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
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "app.corp.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"app.corp.example"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name string, b []byte) string {
		p := filepath.Join(e.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("app.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write("app-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	write("app.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	// 256 KiB, so that the ESP byte counters must grow well past any DNS
	// and handshake traffic.
	var page bytes.Buffer
	page.WriteString("<html><body><h1>app.corp.example behind the gateway</h1>\n")
	for page.Len() < 256<<10 {
		fmt.Fprintf(&page, "<p>line %06d of the internal page</p>\n", page.Len())
	}
	page.WriteString("</body></html>\n")
	e.page = page.Bytes()
	write("www/index.html", e.page)
	os.MkdirAll(filepath.Join(e.dir, "tmp"), 0o755)
	conf := write("nginx.conf", fmt.Appendf(nil, `user root;
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  server {
    listen %[2]s:443 ssl;
    # the gateway's outer address: a path without IPsec, for the benchmark
    listen %[3]s:443 ssl;
    server_name app.corp.example;
    ssl_certificate %[1]s/app.pem;
    ssl_certificate_key %[1]s/app.key;
    root %[1]s/www;
  }
}
`, e.dir, appAddr, iketest.GatewayAddr))
	cmd := exec.Command(e.ip, "netns", "exec", e.lab.GW, nginx, "-c", conf)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "nginx-error.log"))
			t.Logf("nginx: %s\n%s", out.String(), b)
		}
	})
	// Bounded wait for nginx to listen, probed from the gateway itself.
	for i := 0; ; i++ {
		err := exec.Command(e.ip, "netns", "exec", e.lab.GW, "curl", "-s", "-o", "/dev/null", "--max-time", "2",
			"--cacert", filepath.Join(e.dir, "app-ca.pem"), "--resolve", "app.corp.example:443:"+appAddr.String(), "https://app.corp.example/").Run()
		if err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("nginx did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *e2eLab) startLamina(t testing.TB) {
	cfg := filepath.Join(e.dir, "lamina.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `
listeners:
  - {name: do53-udp, url: "udp://127.0.0.1:5353"}
  - {name: do53-tcp, url: "tcp://127.0.0.1:5353"}
  - {name: doh, url: "https://127.0.0.1:8443/dns-query"}
tls:
  state_dir: %s/state
  ech: {public_name: public.lamina.test}
resolver:
  service_name: dns.lamina.test
tunnels:
  - name: branch-gw
    gateway: %s
    local_id: resolver.example
    remote_id: gw.example
    psk_env: LAMINA_E2E_PSK
    ike_proposals: [aes256gcm16-prfsha256-x25519]
    esp_proposals: [aes256gcm16]
    remote_subnets: [%s]
    dpd_delay: 2s
    retransmit_timeout: 500ms
    retransmit_tries: 4
upstream_groups:
  - {name: corp, tunnel: branch-gw, timeout: 3s, upstreams: ["udp://%s"]}
  - {name: public, upstreams: ["udp://127.0.0.1:5399"]}
routes:
  - {zone: corp.example, group: corp}
  - {zone: 0.200.10.in-addr.arpa, group: corp}
  - {zone: ., group: public}
proxies:
  - {name: corp-socks, address: "127.0.0.1:1080", tunnel: branch-gw, ports: [443]}
cache:
  disable: true
`, e.dir, iketest.GatewayAddr, iketest.Internal, corpDNS), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := e.in(laminaBin, "serve", "-config", cfg, "-admin", "127.0.0.1:9153")
	cmd.Env = append(os.Environ(), "LAMINA_E2E_PSK=lamina-e2e-psk-0123456789")
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.pid = cmd.Process.Pid // ip netns exec execs lamina
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("lamina output:\n%s", e.out)
		}
	})
	ca, err := os.ReadFile(filepath.Join(e.dir, "state", "tls", "ca.pem"))
	for i := 0; err != nil && i < 100; i++ {
		time.Sleep(100 * time.Millisecond)
		ca, err = os.ReadFile(filepath.Join(e.dir, "state", "tls", "ca.pem"))
	}
	if err != nil {
		t.Fatalf("Lamina's CA: %v", err)
	}
	app, _ := os.ReadFile(filepath.Join(e.dir, "app-ca.pem"))
	e.bundle = filepath.Join(e.dir, "bundle.pem")
	os.WriteFile(e.bundle, append(ca, app...), 0o644)
	// Bounded wait for the tunnel: the name resolves through it.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.kdig(t), appAddr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("app.corp.example never resolved through the tunnel:\n%s", e.kdig(t))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// curlApp fetches https://app.corp.example/ the way issue 8 tells it: curl
// resolves over DoH to Lamina, then connects by address through Lamina's
// SOCKS5 proxy, which dials through the tunnel.
func (e *e2eLab) curlApp(t testing.TB) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := e.in("curl", "-sS", "--max-time", "20", "--cacert", e.bundle,
		"--doh-url", "https://127.0.0.1:8443/dns-query", "--proxy", "socks5://127.0.0.1:1080", "https://app.corp.example/")
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, stderr.String())
	}
	return b
}

// TestE2ELayersCurlThroughTunnel: curl asks Lamina over DoH for
// app.corp.example, Lamina asks the internal NSD through its IPsec tunnel,
// and curl fetches nginx's page through Lamina's SOCKS5 proxy, whose
// connection crosses the same ESP SA: TLS inside ESP.
func TestE2ELayersCurlThroughTunnel(t *testing.T) {
	t.Parallel()
	e := startE2E(t)
	before := e.layers(t)
	page := e.curlApp(t)
	if !bytes.Equal(page, e.page) {
		t.Fatalf("page: got %d bytes, want nginx's %d", len(page), len(e.page))
	}
	after := e.layers(t)

	// The DNS answer came through the tunnel: the corp upstream answered,
	// over tunnel branch-gw.
	var corp *upstreamLayer
	for i, u := range after.Upstreams {
		if u.Group == "corp" {
			corp = &after.Upstreams[i]
		}
	}
	if corp == nil || corp.Path != "tunnel branch-gw" || corp.Exchanges["ok"] == 0 {
		t.Errorf("corp upstream: %+v", corp)
	}
	noPublic(t, after)

	// The reverse zone of the internal range takes the same path.
	if r, _ := e.in(testenv.Tool(t, "kdig"), "@127.0.0.1", "-p", "5353", "+time=5", "+short", "-x", appAddr.String()).Output(); strings.TrimSpace(string(r)) != "app.corp.example." {
		t.Errorf("PTR %v: %q", appAddr, r)
	}
	// A destination outside the tunnel's traffic selectors is refused by
	// the proxy, never dialled in the clear: the gateway's outer address
	// is reachable over the veth, but not through the tunnel.
	out, err := e.in("curl", "-sS", "--max-time", "10", "-k", "--proxy", "socks5://127.0.0.1:1080", "https://"+iketest.GatewayAddr.String()+"/").CombinedOutput()
	if err == nil {
		t.Errorf("proxy connected outside the traffic selectors:\n%s", out)
	}
	if v := e.layers(t); v.Proxies[0].Failed != after.Proxies[0].Failed+1 || v.Proxies[0].Dials != after.Proxies[0].Dials {
		t.Errorf("refused destination: proxy layer before %+v after %+v", after.Proxies[0], v.Proxies[0])
	}
	var doh *clientLayer
	for i, c := range after.Clients {
		if c.Listener == "doh" {
			doh = &after.Clients[i]
		}
	}
	if doh == nil || doh.Queries == 0 || len(doh.Sessions) == 0 || doh.Sessions[0].TLSVersion != "TLS 1.3" {
		t.Errorf("doh client layer: %+v", doh)
	}
	// The HTTPS bytes crossed the ESP SA.
	if len(before.Tunnels) != 1 || len(after.Tunnels) != 1 || after.Tunnels[0].State != "up" {
		t.Fatalf("tunnels: %+v", after.Tunnels)
	}
	b, a := before.Tunnels[0], after.Tunnels[0]
	if got := a.BytesIn - b.BytesIn; got < uint64(len(e.page)) {
		t.Errorf("ESP inbound bytes grew by %d during the fetch, want at least the page's %d", got, len(e.page))
	}
	if len(a.SAs) < 2 || a.SAs[0].Suite == "" || a.OuterLocal == "" || len(a.InnerLocal) != 1 {
		t.Errorf("tunnel layer: %+v", a)
	}
	// The SAs in /layers are the ones the gateway has: strongSwan lists
	// the same SPIs (our outbound is its inbound and vice versa).
	sas := e.lab.Swanctl(t, "--list-sas")
	for _, sa := range a.SAs {
		if !strings.Contains(sas, sa.SPI) {
			t.Errorf("SA %s (%s) of /layers not at the gateway:\n%s", sa.SPI, sa.Direction, sas)
		}
	}
	if len(after.Proxies) != 1 || after.Proxies[0].TLS != before.Proxies[0].TLS+1 || after.Proxies[0].Path != "tunnel branch-gw" {
		t.Errorf("proxy layer: before %+v after %+v", before.Proxies, after.Proxies)
	}

	// The status page renders the same state.
	html, err := e.in("curl", "-sS", "--max-time", "5", "http://127.0.0.1:9153/status.html").Output()
	if err != nil || !bytes.Contains(html, []byte(a.SAs[0].SPI)) || !bytes.Contains(html, []byte("branch-gw")) {
		t.Errorf("status page: %v\n%.2000s", err, html)
	}

	// lamina query -trace over DoH with ECH shows its own hop and the
	// server's route through the tunnel.
	st, _ := e.in("curl", "-sS", "http://127.0.0.1:9153/status").Output()
	var s struct {
		TLS struct {
			ECHConfigList string `json:"ech_config_list"`
		} `json:"tls"`
	}
	json.Unmarshal(st, &s)
	q, err := e.in(laminaBin, "query", "-server", "https://127.0.0.1:8443/dns-query", "-ca", e.bundle, "-server-name", "dns.lamina.test",
		"-ech", s.TLS.ECHConfigList, "-trace", "-admin", "127.0.0.1:9153", "app.corp.example").CombinedOutput()
	t.Logf("lamina query -trace:\n%s", q)
	for _, want := range []string{appAddr.String(), "TLS 1.3", "ECH      accepted true", "path tunnel branch-gw", "tunnel branch-gw  state up", "ESP SA"} {
		if err != nil || !strings.Contains(string(q), want) {
			t.Errorf("lamina query -trace: %v: no %q in\n%s", err, want, q)
			break
		}
	}
}

// TestE2ELayersTunnelDown: while the gateway is unreachable an internal
// name gets SERVFAIL with an EDE, never the default route's answer; after
// the gateway comes back (restarted, its SAs forgotten) the name resolves
// again within 30 s: the tunnel's short IKE retransmit schedule (500 ms,
// 4 tries) notices the gateway in about 5 s, the default one in about 21 s.
func TestE2ELayersTunnelDown(t *testing.T) {
	t.Parallel()
	e := startE2E(t)
	out, err := exec.Command(e.ip, "-n", e.lab.GW, "-o", "link", "show", "type", "veth").Output()
	m := regexp.MustCompile(`^\d+: ([^@:]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("gateway veth: %v %s", err, out)
	}
	link := func(state string) {
		if out, err := exec.Command(e.ip, "-n", e.lab.GW, "link", "set", string(m[1]), state).CombinedOutput(); err != nil {
			t.Fatalf("link %s: %v %s", state, err, out)
		}
	}
	link("down")
	for i := 0; i < 3; i++ {
		r := e.kdig(t)
		if !strings.Contains(r, "status: SERVFAIL") || !regexp.MustCompile(`EDE: \d+`).MatchString(r) || strings.Contains(r, decoyAddr) {
			t.Errorf("tunnel down, query %d: want SERVFAIL with EDE and no public answer:\n%s", i, r)
		}
	}
	e.lab.Restart(t)
	link("up")
	start := time.Now()
	for !strings.Contains(e.kdig(t), appAddr.String()) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("app.corp.example did not resolve within 30 s of the gateway's return; /layers: %+v", e.layers(t).Tunnels)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("resolved again %v after the gateway returned", time.Since(start).Round(100*time.Millisecond))
	if r := e.kdig(t); strings.Contains(r, decoyAddr) {
		t.Errorf("public answer for an internal name:\n%s", r)
	}
	v := e.layers(t)
	if v.Tunnels[0].IKEEstablished < 2 {
		t.Errorf("tunnel not re-established: %+v", v.Tunnels[0])
	}
	noPublic(t, v)
}

// noPublic fails if any query went to the default route: the internal name
// must never reach a public upstream, answered or failed.
func noPublic(t *testing.T, v layersView) {
	t.Helper()
	for _, u := range v.Upstreams {
		if u.Group == "public" && len(u.Exchanges) > 0 {
			t.Errorf("queries went to the public upstream: %+v", u)
		}
	}
}
