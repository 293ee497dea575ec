package h2_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/cache"
	"github.com/laminadns/lamina/doh"
	"github.com/laminadns/lamina/doh/h2"
	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// BenchmarkDoHPeers measures, in one run, dnsperf -m doh (and h2load) against
// Unbound's DoH, Lamina's DoH handler on Go's stock net/http HTTP/2 server,
// this package without WrapListener, and package doh as Lamina runs it (this
// package and WrapListener), all answering 1000 cached names. It runs once whatever b.N:
//
//	go test -run '^$' -bench DoHPeers -benchtime 1x ./doh/h2
//
// DOHBENCH_SECONDS sets each dnsperf run's length (default 10), DOHBENCH_ROUNDS
// the rounds (default 2), DOHBENCH_LOAD
// its load options (default "-c 16 -T 2 -q 1000"), DOHBENCH_ONLY one target.
func BenchmarkDoHPeers(b *testing.B) {
	testenv.Tool(b, "unbound")
	testenv.Tool(b, "dnsperf")
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("DOHBENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	load := []string{"-c", "16", "-T", "2", "-q", "1000"}
	if v := os.Getenv("DOHBENCH_LOAD"); v != "" {
		load = strings.Fields(v) // e.g. "-c 2 -q 500": few clients, many streams each
	}
	dir := b.TempDir()
	p := tlsconftest.Provider(b, false)
	names := filepath.Join(dir, "names")
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("h%d.bench.test A", i))
	}
	if err := os.WriteFile(names, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	up := startUpstream(b)
	ubPort := startUnbound(b, dir, p, up)

	r := newResolver(b)
	stock := serveStock(b, p, r)
	nocork := serveH2NoCork(b, p, r)
	fast := serveDoH(b, p, r)
	targets := []struct {
		name string
		port int
	}{{"unbound", ubPort}, {"stock-net/http", stock}, {"h2-nocork", nocork}, {"doh/h2", fast}}
	if only := os.Getenv("DOHBENCH_ONLY"); only != "" { // profiling one server
		for _, t := range targets {
			if t.name == only {
				targets = targets[:1]
				targets[0] = t
				break
			}
		}
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("DOHBENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	// The machine is shared and noisy: every target runs once per round,
	// in reverse order every other round, and its best round counts.
	qps := map[string]float64{}
	for round := range rounds {
		for i := range targets {
			t := targets[i]
			if round%2 == 1 {
				t = targets[len(targets)-1-i]
			}
			uri := "doh-uri=https://" + tlsconftest.ServiceName + ":" + strconv.Itoa(t.port) + "/dns-query"
			args := []string{"-m", "doh", "-s", "127.0.0.1", "-p", strconv.Itoa(t.port), "-d", names, "-l", strconv.Itoa(secs), "-O", uri}
			args = append(args, load...)
			out := run(b, "dnsperf", args...)
			v := num(b, out, `Queries per second:\s+([\d.]+)`)
			qps[t.name] = max(qps[t.name], v)
			b.Logf("round %d %-15s dnsperf %.0f qps, lost %.0f (dnsperf %s)", round, t.name, v,
				num(b, out, `Queries lost:\s+(\d+)`), strings.Join(args, " "))
		}
	}
	for _, t := range targets {
		b.ReportMetric(qps[t.name], t.name+"-qps")
	}
	for _, n := range []string{"stock-net/http", "h2-nocork", "doh/h2"} {
		if qps["unbound"] == 0 {
			break
		}
		b.Logf("best of %d: %s / unbound = %.2f", rounds, n, qps[n]/qps["unbound"])
	}
	if qps["unbound"] > 0 && qps["doh/h2"] > 0 {
		b.ReportMetric(qps["doh/h2"]/qps["unbound"], "h2/unbound")
	}
	if _, err := exec.LookPath("h2load"); err == nil {
		for _, t := range targets {
			u := "https://127.0.0.1:" + strconv.Itoa(t.port) + "/dns-query?dns=AAABAAABAAAAAAAAAmgxBWJlbmNoBHRlc3QAAAEAAQ"
			out := run(b, "h2load", "-D", "5", "-c", "16", "-m", "10", u)
			rps := num(b, out, `finished in [^,]+, ([\d.]+) req/s`)
			b.Logf("%-15s h2load -D 5 -c 16 -m 10 GET: %.0f req/s (%s)", t.name, rps, firstLine(out, "requests:"))
			b.ReportMetric(rps, t.name+"-h2load-rps")
		}
	}
}

func run(b *testing.B, tool string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return string(out)
}

func num(b *testing.B, out, re string) float64 {
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no %s in:\n%s", re, out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func firstLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// answer is what both the in-process upstream and the test DNS server
// answer: hN.bench.test A 10.0.x.y, TTL 3600.
func answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	var n int
	fmt.Sscanf(q.Name, "h%d.", &n)
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
		A: net.IPv4(10, 0, byte(n>>8), byte(n)).To4()}}
	return m
}

type upstream struct{ n atomic.Int64 }

func (u *upstream) Exchange(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
	u.n.Add(1)
	return answer(req), nil
}
func (u *upstream) String() string { return "bench://answer" }
func (u *upstream) Close() error   { return nil }

// newResolver is Lamina's resolver with its real cache, the 1000 names
// cached through the ordinary miss path.
func newResolver(b *testing.B) *resolver.Resolver {
	c, err := cache.New(cache.Config{MaxEntries: 100_000})
	if err != nil {
		b.Fatal(err)
	}
	up := &upstream{}
	r, err := resolver.New(resolver.Config{Routes: []resolver.Route{{Zone: "bench.test.", Upstream: up}}, Cache: c})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); c.Close() })
	for i := range 1000 {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("h%d.bench.test.", i), dns.TypeA)
		if _, err := r.ServeDNS(context.Background(), &resolver.Query{Msg: m, Transport: resolver.HTTPS, MaxSize: 65535}); err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// startUpstream is the DNS server Unbound forwards bench.test to.
func startUpstream(b *testing.B) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) { w.WriteMsg(answer(req)) })}
	go s.ActivateAndServe()
	b.Cleanup(func() { s.Shutdown() })
	return pc.LocalAddr().String()
}

// startUnbound runs Unbound 1.17 as bench/lib.sh does (2 threads, cache,
// forwarding bench.test) with DoH on a port of its own, and warms its cache
// over UDP with the 1000 names.
func startUnbound(b *testing.B, dir string, p *tlsconf.Provider, up string) int {
	cert := p.Certificate()
	var pemCert []byte
	for _, der := range cert.Certificate {
		pemCert = append(pemCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "server.pem"), pemCert, 0o644)
	os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	udp, doh := freePort(b), freePort(b)
	upHost, upPort, _ := net.SplitHostPort(up)
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1@%[1]d
  interface: 127.0.0.1@%[2]d
  port: %[1]d
  https-port: %[2]d
  tls-service-key: "%[3]s/server.key"
  tls-service-pem: "%[3]s/server.pem"
  http-endpoint: "/dns-query"
  num-threads: 2
  so-reuseport: yes
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "%[3]s"
  pidfile: "%[3]s/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "test." nodefault
  msg-cache-size: 64m
  rrset-cache-size: 128m
  incoming-num-tcp: 1000
  num-queries-per-thread: 4096
forward-zone:
  name: "bench.test."
  forward-addr: %[4]s@%[5]s
`, udp, doh, dir, upHost, upPort)
	cf := filepath.Join(dir, "unbound.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	cmd := exec.Command("unbound", "-d", "-c", cf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &dns.Client{Timeout: time.Second}
	for i := 0; i < 1000; i++ {
		m := new(dns.Msg)
		m.SetQuestion(fmt.Sprintf("h%d.bench.test.", i), dns.TypeA)
		var err error
		for try := 0; try < 50; try++ {
			var r *dns.Msg
			if r, _, err = c.Exchange(m, "127.0.0.1:"+strconv.Itoa(udp)); err == nil && len(r.Answer) == 1 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			b.Fatalf("warming unbound: %v", err)
		}
	}
	return doh
}

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveStock serves Lamina's DoH handler (package doh's ServeHTTP) with
// Go's stock net/http HTTP/2 server.
func serveStock(b *testing.B, p *tlsconf.Provider, r *resolver.Resolver) int {
	d, err := doh.New(doh.Config{Handler: r})
	if err != nil {
		b.Fatal(err)
	}
	cfg := p.ServerConfig(tlsconf.DoH)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	hs := &http.Server{Handler: d, TLSConfig: cfg}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	b.Cleanup(func() { hs.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// serveDoH runs package doh as Lamina does: HTTP/2 through doh/h2 and
// h2.WrapListener.
func serveDoH(b *testing.B, p *tlsconf.Provider, r *resolver.Resolver) int {
	d, err := doh.New(doh.Config{Handler: r, TLSConfig: p.ServerConfig(tlsconf.DoH)})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go d.Serve(ln)
	b.Cleanup(func() { d.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// serveH2NoCork is doh/h2 behind net/http's TLS listener without
// WrapListener: every answer costs a write of its own.
func serveH2NoCork(b *testing.B, p *tlsconf.Provider, r *resolver.Resolver) int {
	d, err := doh.New(doh.Config{Handler: r})
	if err != nil {
		b.Fatal(err)
	}
	fast, err := h2.NewServer(h2.Config{Handler: r, Fallback: d})
	if err != nil {
		b.Fatal(err)
	}
	cfg := p.ServerConfig(tlsconf.DoH)
	cfg.NextProtos = []string{"h2"}
	hs := &http.Server{Handler: d, TLSConfig: cfg, TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, _ http.Handler) { fast.ServeConn(context.Background(), c) }}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	b.Cleanup(func() { hs.Close(); fast.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}
