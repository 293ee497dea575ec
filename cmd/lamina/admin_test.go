package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/laminadns/lamina/internal/testenv"
)

// TestDefaultConfigNoFlags runs `lamina serve` exactly as a newcomer would,
// when the default ports (8053 for DNS, 9153 for admin) are free here.
func TestDefaultConfigNoFlags(t *testing.T) {
	for _, a := range []string{"udp:127.0.0.1:8053", "tcp:127.0.0.1:8053", "tcp:127.0.0.1:8853", "udp:127.0.0.1:8853", "tcp:127.0.0.1:8443", "udp:127.0.0.1:8443", "tcp:127.0.0.1:9153"} {
		network, addr, _ := strings.Cut(a, ":")
		var err error
		if network == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", addr); err == nil {
				pc.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", addr); err == nil {
				l.Close()
			}
		}
		if err != nil {
			t.Skipf("default port busy on this machine (%v); TestDefaultConfigAnswers covers the config", err)
		}
	}
	state := t.TempDir()
	cmd := exec.Command(laminaBin, "serve")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+state)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("lamina output:\n%s", out)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:9153/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("default config never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.TrimSpace(kdig(t, "127.0.0.1:8053", "+short", "router.home.arpa")); got != "192.168.1.1" {
		t.Errorf("kdig @127.0.0.1 -p 8053 router.home.arpa = %q", got)
	}
	ca := state + "/lamina/tls/ca.pem"
	if got := strings.TrimSpace(kdig(t, "127.0.0.1:8853", "+tls-ca="+ca, "+tls-hostname=lamina.home.arpa", "+short", "router.home.arpa")); got != "192.168.1.1" {
		t.Errorf("kdig over DoT on 8853 = %q", got)
	}
	if got := strings.TrimSpace(kdig(t, "127.0.0.1:8443", "+tls-ca="+ca, "+tls-hostname=lamina.home.arpa", "+https", "+short", "router.home.arpa")); got != "192.168.1.1" {
		t.Errorf("kdig over DoH on 8443 = %q", got)
	}
	if got := kdig(t, "127.0.0.1:8053", "+short", "_dns.resolver.arpa", "SVCB"); !strings.Contains(got, "lamina.home.arpa. alpn=dot port=8853") {
		t.Errorf("DDR record = %q", got)
	}
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cacheEntries reads lamina_cache_entries from /metrics.
func cacheEntries(t *testing.T, p *proc) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^lamina_cache_entries (\S+)$`).FindStringSubmatch(p.metrics(t))
	if m == nil {
		t.Fatal("no lamina_cache_entries in /metrics")
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return int(f)
}

// TestCacheFlushAndReload fills the cache through NSD, checks that it
// survives a SIGHUP with unchanged cache settings, then flushes one name and
// everything over the admin listener.
func TestCacheFlushAndReload(t *testing.T) {
	t.Parallel()
	auth := startNSD(t, map[string]string{"c.test.": "* IN A 10.0.0.7\n"})
	addr := freeAddr(t)
	cfgText := fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
upstream_groups: [{name: g, upstreams: ["udp://%s"]}]
routes: [{zone: ., group: g}]
`, addr, auth.addr)
	cfg := writeConfig(t, cfgText)
	p := startLamina(t, addr, "-config", cfg)
	for i := range 3 {
		mustExchange(t, addr, "udp", fmt.Sprintf("n%d.c.test", i), dns.TypeA)
	}
	if n := cacheEntries(t, p); n != 3 {
		t.Fatalf("cache entries after 3 names: %d", n)
	}

	answered := metricSum(p.metrics(t), "lamina_resolver_responses_total")
	routed := metricSum(p.metrics(t), "lamina_route_queries_total", `route="."`)
	if answered < 3 || routed != 3 {
		t.Fatalf("before reload: %v responses, %v queries routed to ., want >= 3 and 3", answered, routed)
	}

	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 5*time.Second)
	if n := cacheEntries(t, p); n != 3 {
		t.Errorf("cache entries after a reload with the same cache settings: %d, want 3", n)
	}
	// Counters run on across the reload instead of restarting at zero.
	mustExchange(t, addr, "udp", "n3.c.test", dns.TypeA)
	m := p.metrics(t)
	if got := metricSum(m, "lamina_resolver_responses_total"); got < answered+1 {
		t.Errorf("responses counted after reload and one query: %v, want >= %v", got, answered+1)
	}
	if got := metricSum(m, "lamina_route_queries_total", `route="."`); got != routed+1 {
		t.Errorf("queries routed to . after reload and one query: %v, want %v", got, routed+1)
	}

	base := "http://" + p.admin
	if code, body := post(t, base+"/cache/flush?name=n1.c.test"); code != 200 || !strings.Contains(body, "flushed 1") {
		t.Errorf("flush one name: %d %q", code, body)
	}
	if n := cacheEntries(t, p); n != 3 {
		t.Errorf("after flushing one name: %d entries", n)
	}
	if code, _ := post(t, base+"/cache/flush"); code != 200 {
		t.Errorf("flush: %d", code)
	}
	if n := cacheEntries(t, p); n != 0 {
		t.Errorf("after flush: %d entries", n)
	}
	if resp, err := http.Get(base + "/cache/flush"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /cache/flush: %v %v", resp.Status, err)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v", err)
	}

	// Changed cache settings: a new, empty cache.
	mustExchange(t, addr, "udp", "n9.c.test", dns.TypeA)
	if err := os.WriteFile(cfg, []byte(cfgText+"cache: {size: 500}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(p.out.String(), "configuration reloaded") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := cacheEntries(t, p); n != 0 {
		t.Errorf("after a reload with new cache settings: %d entries, want a fresh cache", n)
	}
	// The new cache's counters continue the old one's.
	if misses := metricSum(p.metrics(t), "lamina_cache_misses_total"); misses < 5 {
		t.Errorf("cache misses after the cache was replaced: %v, want the old cache's 5 or more", misses)
	}
}

// TestAdminToken: with admin.token_env set, POST /cache/flush needs the
// bearer token even from loopback; refusals are counted. GET is unchanged.
func TestAdminToken(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
local_zones: [{name: lab.test, records: ["a IN A 10.9.0.1"]}]
admin: {token_env: LAMINA_TEST_ADMIN_TOKEN}
`, addr))
	p := startLaminaEnv(t, []string{"LAMINA_TEST_ADMIN_TOKEN=s3cret"}, addr, "-config", cfg)
	url := "http://" + p.admin + "/cache/flush"
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Basic czNjcmV0", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusOK},
	} {
		req, _ := http.NewRequest("POST", url, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %s, want %d", tc.header, resp.Status, tc.want)
		}
	}
	if got := metricSum(p.metrics(t), "lamina_admin_denied_total"); got != 3 {
		t.Errorf("lamina_admin_denied_total = %v, want 3", got)
	}

	// A token variable that is not set stops the start, naming it.
	out, err := exec.Command(laminaBin, "serve", "-config", cfg, "-admin", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "$LAMINA_TEST_ADMIN_TOKEN is not set") {
		t.Errorf("start without the token variable: %v\n%s", err, out)
	}
}

// TestAdminAuthLoopbackOnly: without a token, POST is served to loopback
// clients (IPv4, IPv6, v4-mapped) and refused to anyone else.
func TestAdminAuthLoopbackOnly(t *testing.T) {
	a := &adminAuth{denied: prometheus.NewCounter(prometheus.CounterOpts{Name: "denied"})}
	for remote, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:50": true,
		"192.0.2.1:1234":        false,
		"[2001:db8::1]:80":      false,
		"garbage":               false,
	} {
		r := httptest.NewRequest("POST", "/cache/flush", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		if got := a.allow(w, r); got != want {
			t.Errorf("%s: allowed %v, want %v", remote, got, want)
		}
		if !want && w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", remote, w.Code)
		}
	}
	var m dto.Metric
	a.denied.Write(&m)
	if got := m.GetCounter().GetValue(); got != 3 {
		t.Errorf("denied = %v, want 3", got)
	}
}

// TestQueryLogJSON: JSON logs, a query log without client addresses unless
// log_client_ip is set.
func TestQueryLogJSON(t *testing.T) {
	t.Parallel()
	for _, withIP := range []bool{false, true} {
		t.Run(fmt.Sprint("log_client_ip=", withIP), func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
local_zones: [{name: ql.test, records: ["a IN A 10.0.0.1"]}]
logging: {format: json, query_log: true, log_client_ip: %v}
`, addr, withIP))
			p := startLamina(t, addr, "-config", cfg)
			mustExchange(t, addr, "udp", "a.ql.test", dns.TypeA)
			p.waitLog(t, `"name":"a.ql.test."`, 5*time.Second)
			var rec map[string]any
			for line := range strings.Lines(p.out.String()) {
				rec = nil
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line is not JSON: %q", line)
				}
				if rec["name"] == "a.ql.test." {
					break
				}
			}
			if rec["log"] != "query" || rec["rcode"] != "NOERROR" {
				t.Errorf("query log record: %v", rec)
			}
			_, hasClient := rec["client"]
			if hasClient != withIP || (!withIP && strings.Contains(fmt.Sprint(rec), "127.0.0")) {
				t.Errorf("client in query log = %v, want %v: %v", rec["client"], withIP, rec)
			}
		})
	}
}

// TestSharedRedisCache runs two instances over one Redis: a name resolved
// through the first is answered by the second from Redis, with no upstream
// exchange of its own; a flush on one reaches the other.
func TestSharedRedisCache(t *testing.T) {
	t.Parallel()
	redisBin := testenv.Tool(t, "redis-server")
	rport := testenv.FreePort(t)
	redis := exec.Command(redisBin, "--port", strconv.Itoa(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Process.Kill(); redis.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", rport))
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatal("redis-server not listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
	auth := startNSD(t, map[string]string{"shared.test.": "* IN A 10.0.0.42\n"})
	start := func() *proc {
		addr := freeAddr(t)
		cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
upstream_groups: [{name: g, upstreams: ["udp://%s"]}]
routes: [{zone: ., group: g}]
cache: {redis: {url: "redis://127.0.0.1:%d/0", prefix: "%s:"}}
`, addr, auth.addr, rport, t.Name()))
		return startLamina(t, addr, "-config", cfg)
	}
	a, b := start(), start()
	exchanges := func(p *proc) string {
		m := regexp.MustCompile(`lamina_upstream_exchanges_total\{[^}]*\} (\S+)`).FindStringSubmatch(p.metrics(t))
		if m == nil {
			return "0"
		}
		return m[1]
	}
	if r := mustExchange(t, a.dns, "udp", "www.shared.test", dns.TypeA); len(r.Answer) != 1 {
		t.Fatalf("instance A: %v", r)
	}
	// Redis writes may trail the answer: wait until the key is there.
	deadline := time.Now().Add(3 * time.Second)
	for redisKeys(t, rport) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("instance A stored nothing in Redis")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := mustExchange(t, b.dns, "udp", "www.shared.test", dns.TypeA)
	if len(r.Answer) != 1 {
		t.Fatalf("instance B: %v", r)
	}
	if got := exchanges(b); got != "0" {
		t.Errorf("instance B made %s upstream exchanges, want 0 (answered from Redis)", got)
	}
	if !regexp.MustCompile(`lamina_cache_redis_hits_total [1-9]`).MatchString(b.metrics(t)) {
		t.Error("instance B counted no Redis hit")
	}

	if code, body := post(t, "http://"+b.admin+"/cache/flush?name=www.shared.test"); code != 200 {
		t.Fatalf("flush on B: %d %s", code, body)
	}
	deadline = time.Now().Add(3 * time.Second)
	for cacheEntries(t, a) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a flush on instance B did not reach instance A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisKeys asks Redis for DBSIZE over its text protocol.
func redisKeys(t *testing.T, port int) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$6\r\nDBSIZE\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || n < 4 || buf[0] != ':' {
		t.Fatalf("DBSIZE: %q %v", buf[:n], err)
	}
	return atoi(strings.TrimSpace(string(buf[1:n])))
}

// TestProxyResolvesThroughLamina serves SOCKS5 and HTTP CONNECT; curl asks
// for a name only Lamina's local zone knows, and the page comes back.
func TestProxyResolvesThroughLamina(t *testing.T) {
	t.Parallel()
	curl := testenv.Tool(t, "curl")
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "hello from app") })}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(wl)
	t.Cleanup(func() { web.Close() })
	webPort := wl.Addr().(*net.TCPAddr).Port

	addr, proxyAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
local_zones: [{name: app.test, records: ["www IN A 127.0.0.1"]}]
proxies: [{name: p, address: "%s", ports: [%d]}]
`, addr, proxyAddr, webPort))
	p := startLamina(t, addr, "-config", cfg)
	url := fmt.Sprintf("http://www.app.test:%d/", webPort)
	for _, args := range [][]string{
		{"--proxy", "socks5h://" + proxyAddr, url},
		{"--proxytunnel", "--proxy", "http://" + proxyAddr, url},
	} {
		out, err := exec.Command(curl, append([]string{"-s", "--max-time", "5"}, args...)...).CombinedOutput()
		if err != nil || string(out) != "hello from app" {
			t.Errorf("curl %v: %v %q", args, err, out)
		}
	}
	// A port outside the allow-list is refused.
	if out, err := exec.Command(curl, "-s", "--max-time", "5", "--proxy", "socks5h://"+proxyAddr, "http://www.app.test:1/").CombinedOutput(); err == nil {
		t.Errorf("port 1 through the proxy: %q", out)
	}
	if !regexp.MustCompile(`lamina_proxy_connections_total\{listener="p",result="[a-z_]+"\} [1-9]`).MatchString(p.metrics(t)) {
		t.Error("proxy connections not counted")
	}
}

// TestDigEDNSOnCacheHits: dig (a real client) gets its EDNS answers right
// on cache hits, which the wire fast path serves: the keepalive option over
// TCP and DoT with each listener's idle timeout, and over DoT a padded
// answer (468 bytes, RFC 8467).
func TestDigEDNSOnCacheHits(t *testing.T) {
	t.Parallel()
	bin := testenv.Tool(t, "dig")
	auth := startNSD(t, map[string]string{"k.test.": "* IN A 10.0.0.8\n"})
	addr, dot := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {url: "udp://%[1]s"}
  - {url: "tcp://%[1]s", idle_timeout: 7s}
  - {url: "tls://%[2]s", idle_timeout: 9s}
upstream_groups: [{name: g, upstreams: ["udp://%[3]s"]}]
routes: [{zone: k.test, group: g}]
tls: {state_dir: %[4]s, ech: {disable: true}}
`, addr, dot, auth.addr, t.TempDir()))
	startLamina(t, addr, "-config", cfg)
	dig := func(addr string, args ...string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		all := append([]string{"@" + host, "-p", port, "+time=3", "+tries=1"}, args...)
		out, err := exec.Command(bin, all...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", all, err, out)
		}
		return string(out)
	}
	for i := range 2 { // a miss, then a hit
		out := dig(addr, "+tcp", "+keepalive", "a.k.test", "A")
		if !strings.Contains(out, "10.0.0.8") || !strings.Contains(out, "KEEPALIVE: 7.0 secs") {
			t.Errorf("TCP, query %d:\n%s", i, out)
		}
		out = dig(dot, "+tls", "+keepalive", "+padding=128", "a.k.test", "A")
		if i == 1 {
			t.Logf("DoT cache hit:\n%s", out)
		}
		if !strings.Contains(out, "10.0.0.8") || !strings.Contains(out, "KEEPALIVE: 9.0 secs") || !strings.Contains(out, "rcvd: 468") {
			t.Errorf("DoT, query %d:\n%s", i, out)
		}
	}
}
