package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReloadUnderLoad sends SIGHUP four times while dnsperf runs at 500 qps:
// a new local record, a new route to another NSD, a broken file (logged, the
// old config keeps serving) and a new TCP listener. dnsperf must lose nothing.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	one := startNSD(t, map[string]string{"load.test.": "* IN A 10.0.0.1\n"})
	two := startNSD(t, map[string]string{"other.test.": "* IN A 10.0.0.2\n"})
	addr := freeAddr(t)
	base := fmt.Sprintf(`
listeners: [{name: udp, url: "udp://%s"}]
upstream_groups:
  - {name: one, upstreams: ["udp://%s"]}
  - {name: two, upstreams: ["udp://%s"]}
routes: [{zone: load.test, group: one}]
local_zones: [{name: lab.test, records: ["a IN A 10.9.0.1"]}]
`, addr, one.addr, two.addr)
	cfg := writeConfig(t, base)
	p := startLamina(t, addr, "-config", cfg)

	var queries strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&queries, "n%d.load.test A\n", i)
		if i%10 == 0 {
			fmt.Fprintf(&queries, "a.lab.test A\n")
		}
	}
	qfile := filepath.Join(t.TempDir(), "queries")
	if err := os.WriteFile(qfile, []byte(queries.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	perf := startDnsperf(t, addr, qfile, "-Q", "500", "-l", "5", "-t", "3")

	tcpAddr := freeAddr(t)
	steps := []struct{ text, log string }{
		{strings.Replace(base, `"a IN A 10.9.0.1"`, `"a IN A 10.9.0.1", "b IN A 10.9.0.2"`, 1), "configuration reloaded"},
		{strings.Replace(base, "routes: [{zone: load.test, group: one}]", "routes: [{zone: load.test, group: one}, {zone: other.test, group: two}]", 1), "configuration reloaded"},
		{base + "bogus_key: 1\n", "reload failed"},
		{strings.Replace(base, `listeners: [{name: udp, url: "udp://`+addr+`"}]`, `listeners: [{name: udp, url: "udp://`+addr+`"}, {name: tcp, url: "tcp://`+tcpAddr+`"}]`, 1), "configuration reloaded"},
	}
	for i, s := range steps {
		time.Sleep(900 * time.Millisecond)
		if err := os.WriteFile(cfg, []byte(s.text), 0o644); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(p.out.String(), s.log)
		p.signal(t, syscall.SIGHUP)
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(p.out.String(), s.log) == before {
			if time.Now().After(deadline) {
				t.Fatalf("reload %d: no %q logged", i, s.log)
			}
			time.Sleep(10 * time.Millisecond)
		}
		switch i {
		case 0:
			if r := mustExchange(t, addr, "udp", "b.lab.test", dns.TypeA); len(r.Answer) != 1 {
				t.Errorf("record added by reload not served: %v", r)
			}
		case 1:
			if r := mustExchange(t, addr, "udp", "x.other.test", dns.TypeA); len(r.Answer) != 1 {
				t.Errorf("route added by reload not used: %v", r)
			}
		case 2:
			if r := mustExchange(t, addr, "udp", "x.other.test", dns.TypeA); len(r.Answer) != 1 {
				t.Errorf("after a broken reload the old config should keep serving: %v", r)
			}
		case 3:
			if r := mustExchange(t, tcpAddr, "tcp", "a.lab.test", dns.TypeA); len(r.Answer) != 1 {
				t.Errorf("listener added by reload: %v", r)
			}
		}
	}
	perf.wait(t, 20*time.Second, 1500, "across 4 reloads")
	if !strings.Contains(p.out.String(), "bogus_key: unknown key") {
		t.Errorf("the broken config's error was not logged with its location")
	}
}

// slowUpstream answers every query after delay, for in-flight drain tests.
func slowUpstream(t *testing.T, delay time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		time.Sleep(delay)
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 0, 0, 9)})
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestGracefulShutdown sends SIGTERM while 20 queries wait on a slow upstream:
// every one is answered and lamina exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	up := slowUpstream(t, 500*time.Millisecond)
	addr := freeAddr(t)
	p := startLamina(t, addr, "-listen", "udp://"+addr, "-listen", "tcp://"+addr, "-upstream", "udp://"+up)

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		network := []string{"udp", "tcp"}[i%2]
		wg.Go(func() {
			r, err := exchange(addr, network, fmt.Sprintf("q%d.slow.test", i), dns.TypeA)
			switch {
			case err != nil:
				errs <- err
			case r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1:
				errs <- fmt.Errorf("q%d over %s: %s, %d answers", i, network, dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // the queries are waiting on the upstream
	p.signal(t, syscall.SIGTERM)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error("in-flight query lost at shutdown:", err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if _, err := exchange(addr, "tcp", "after.slow.test", dns.TypeA); err == nil {
		t.Error("still answering after shutdown")
	}
}

// TestACLRefused puts an ACL that denies loopback on one listener: REFUSED
// with EDE 18 (Prohibited) there, answers on the other.
func TestACLRefused(t *testing.T) {
	t.Parallel()
	denied, open := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {name: guarded, url: "udp://%s", acl: outside-only}
  - {name: open, url: "tcp://%s"}
acls:
  - {name: outside-only, allow: [0.0.0.0/0, "::/0"], deny: [127.0.0.0/8]}
local_zones: [{name: acl.test, records: ["a IN A 10.0.0.1"]}]
`, denied, open))
	p := startLamina(t, denied, "-config", cfg)

	r := mustExchange(t, denied, "udp", "a.acl.test", dns.TypeA)
	if r.Rcode != dns.RcodeRefused || ede(r) != int(dns.ExtendedErrorCodeProhibited) {
		t.Errorf("guarded listener: %s EDE %d, want REFUSED EDE 18", dns.RcodeToString[r.Rcode], ede(r))
	}
	if out := kdig(t, denied, "a.acl.test"); !strings.Contains(out, "REFUSED") {
		t.Errorf("kdig on guarded listener:\n%s", out)
	}
	if r := mustExchange(t, open, "tcp", "a.acl.test", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("open listener: %v", r)
	}
	if !regexp.MustCompile(`lamina_refused_total\{reason="acl"\} [1-9]`).MatchString(p.metrics(t)) {
		t.Error("ACL refusals not counted in lamina_refused_total")
	}
}

// TestRateLimit sends queries from one client back to back until five are
// refused (or dropped, in drop mode): the burst of five passes first.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"refuse", "drop"} {
		t.Run(action, func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
local_zones: [{name: rl.test, records: ["a IN A 10.0.0.1"]}]
rate_limit: {qps: 2, burst: 5, action: %s}
`, addr, action))
			p := startLamina(t, addr, "-config", cfg)
			c := &dns.Client{Timeout: 200 * time.Millisecond}
			ok, refused, lost := 0, 0, 0
			for i := 0; i < 30 && refused+lost < 5; i++ {
				m := new(dns.Msg)
				m.SetQuestion("a.rl.test.", dns.TypeA)
				r, _, err := c.Exchange(m, addr)
				switch {
				case err != nil:
					lost++
				case r.Rcode == dns.RcodeSuccess:
					ok++
				case r.Rcode == dns.RcodeRefused:
					refused++
				}
			}
			t.Logf("%s: %d answered, %d refused, %d dropped", action, ok, refused, lost)
			if ok < 5 || ok > 10 {
				t.Errorf("%d answered, want the burst of 5 plus what 2 qps refills", ok)
			}
			if action == "refuse" {
				m := new(dns.Msg)
				m.SetQuestion("a.rl.test.", dns.TypeA)
				m.SetEdns0(1232, false)
				if r, _, err := c.Exchange(m, addr); err != nil || r.Rcode != dns.RcodeRefused || ede(r) < 0 {
					t.Errorf("over the limit with EDNS: %v %v, want REFUSED with an EDE", r, err)
				}
			}
			if action == "refuse" && (refused == 0 || lost != 0) {
				t.Errorf("refuse mode: %d refused, %d dropped", refused, lost)
			}
			if action == "drop" && (lost == 0 || refused != 0) {
				t.Errorf("drop mode: %d refused, %d dropped", refused, lost)
			}
			if !regexp.MustCompile(`lamina_ratelimited_total [1-9]`).MatchString(p.metrics(t)) {
				t.Error("lamina_ratelimited_total not counted")
			}
		})
	}
}

// TestPortInUse: a listener whose port is taken is one clear line and exit 1.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(laminaBin, "serve", "-listen", "tcp://"+l.Addr().String(), "-admin", freeAddr(t))
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	var errLines []string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "lamina: ") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], "address already in use") {
		t.Errorf("want one line saying the address is in use, got:\n%s", out)
	}

	// The admin port taken: the same.
	cmd = exec.Command(laminaBin, "serve", "-listen", "udp://"+freeAddr(t), "-admin", l.Addr().String())
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "lamina: admin listener: ") || !strings.Contains(string(out), "address already in use") {
		t.Errorf("admin port in use: exit %d\n%s", code, out)
	}
}

// TestReloadListeners moves the TCP listener to another port with SIGHUP:
// the old port closes, the new one answers, UDP is untouched.
func TestReloadListeners(t *testing.T) {
	t.Parallel()
	udp, tcpA, tcpB := freeAddr(t), freeAddr(t), freeAddr(t)
	text := `
listeners:
  - {name: udp, url: "udp://%s"}
  - {name: tcp, url: "tcp://%s"}
local_zones: [{name: rl.test, records: ["a IN A 10.0.0.1"]}]
`
	cfg := writeConfig(t, fmt.Sprintf(text, udp, tcpA))
	p := startLamina(t, udp, "-config", cfg)
	mustExchange(t, tcpA, "tcp", "a.rl.test", dns.TypeA)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(text, udp, tcpB)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 5*time.Second)
	if r := mustExchange(t, tcpB, "tcp", "a.rl.test", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("new TCP listener: %v", r)
	}
	if _, err := exchange(tcpA, "tcp", "a.rl.test", dns.TypeA); err == nil {
		t.Error("old TCP listener still answers")
	}
	if r := mustExchange(t, udp, "udp", "a.rl.test", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("UDP listener after reload: %v", r)
	}
}

// TestReloadRollback: a reload that renames the UDP listener (so the old
// one stops to free its socket) and adds one on a port something else
// holds fails as a whole: the added and renamed listeners go, the old one
// is back and answers, and the old configuration keeps serving.
func TestReloadRollback(t *testing.T) {
	t.Parallel()
	udp, tcp := freeAddr(t), freeAddr(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := fmt.Sprintf(`
listeners:
  - {name: udp, url: "udp://%s"}
local_zones: [{name: rb.test, records: ["a IN A 10.0.0.1"]}]
`, udp)
	cfg := writeConfig(t, base)
	p := startLamina(t, udp, "-config", cfg)
	broken := fmt.Sprintf(`
listeners:
  - {name: renamed, url: "udp://%s"}
  - {name: tcp, url: "tcp://%s"}
  - {name: busy, url: "tcp://%s"}
local_zones: [{name: rb.test, records: ["a IN A 10.0.0.2"]}]
`, udp, tcp, busy.Addr())
	if err := os.WriteFile(cfg, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "reload failed", 5*time.Second)
	p.waitLog(t, "listener restored", 5*time.Second)
	r := mustExchange(t, udp, "udp", "a.rb.test", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
		t.Errorf("after the failed reload: %v, want the old configuration's 10.0.0.1", r)
	}
	if _, err := exchange(tcp, "tcp", "a.rb.test", dns.TypeA); err == nil {
		t.Error("a listener the failed reload started still answers")
	}
	// The next good reload still works.
	if err := os.WriteFile(cfg, []byte(strings.Replace(base, "10.0.0.1", "10.0.0.3", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 5*time.Second)
	if r := mustExchange(t, udp, "udp", "a.rb.test", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.3" {
		t.Errorf("after a good reload: %v", r)
	}
}

// TestBadKeyFile: a certificate that does not load is one line and exit 2.
func TestBadKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"cert.pem", "key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "lamina.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
listeners: [{url: "tls://%s"}]
tls: {cert_file: cert.pem, key_file: key.pem}
`, freeAddr(t))), 0o644)
	cmd := exec.Command(laminaBin, "serve", "-config", cfg, "-admin", freeAddr(t))
	out, _ := cmd.CombinedOutput()
	var lines []string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "lamina: ") {
			lines = append(lines, line)
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "tls:") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestListenerLimits: a tcp listener's idle_timeout is what it advertises
// with edns-tcp-keepalive, and over max_conns the longest-idle connection
// is closed.
func TestListenerLimits(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {name: udp, url: "udp://%[1]s"}
  - {name: tcp, url: "tcp://%[1]s", max_conns: 2, idle_timeout: 7s}
local_zones: [{name: ll.test, records: ["a IN A 10.0.0.1"]}]
`, addr))
	startLamina(t, addr, "-config", cfg)
	q := new(dns.Msg)
	q.SetQuestion("a.ll.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	var conns []*dns.Conn
	for i := range 3 {
		c, err := dns.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		var ka *dns.EDNS0_TCP_KEEPALIVE
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				ka, _ = o.(*dns.EDNS0_TCP_KEEPALIVE)
			}
		}
		if ka == nil || ka.Timeout != 70 {
			t.Fatalf("connection %d: keepalive %v, want 70 (7 s in 100 ms units)", i, ka)
		}
		conns = append(conns, c)
		time.Sleep(50 * time.Millisecond) // the first is the longest idle
	}
	conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conns[0].ReadMsg(); err == nil || isTimeoutErr(err) {
		t.Errorf("the longest-idle connection over max_conns: %v, want it closed", err)
	}
	conns[2].SetDeadline(time.Now().Add(5 * time.Second))
	if err := conns[2].WriteMsg(q); err != nil {
		t.Fatal(err)
	}
	if _, err := conns[2].ReadMsg(); err != nil {
		t.Errorf("the newest connection: %v", err)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
