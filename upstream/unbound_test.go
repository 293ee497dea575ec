package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// unbound is a real Unbound serving DoT and DoH (h2) on 127.0.0.1 from
// local data with the names the conformance suite asks for.
type unbound struct {
	dot, doh, udp, tcp string // upstream URLs
}

func startUnbound(t testing.TB, pki *testPKI, idle time.Duration) *unbound {
	t.Helper()
	bin := testenv.Tool(t, "unbound")
	dir := t.TempDir()
	ports := map[int]bool{}
	for len(ports) < 3 {
		ports[testenv.FreePort(t)] = true
	}
	var pl []int
	for p := range ports {
		pl = append(pl, p)
	}
	dotPort, dohPort, plainPort := pl[0], pl[1], pl[2]
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  verbosity: 0
  interface: 127.0.0.1@%[1]d
  interface: 127.0.0.1@%[2]d
  interface: 127.0.0.1@%[7]d
  tls-port: %[1]d
  https-port: %[2]d
  tls-service-key: %[3]q
  tls-service-pem: %[4]q
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %[5]q
  pidfile: "%[5]s/unbound.pid"
  use-syslog: no
  logfile: "%[5]s/unbound.log"
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  num-threads: 1
  incoming-num-tcp: 200
  tcp-idle-timeout: %[6]d
  local-zone: "test." static
  local-zone: "example." static
  local-data: "www.test. 300 A 192.0.2.1"
  local-data: "www.example. 300 A 192.0.2.1"
`, dotPort, dohPort, pki.keyFile, pki.certFile, dir, idle.Milliseconds(), plainPort)
	for i := range 100 {
		fmt.Fprintf(&conf, "  local-data: \"q%d.test. 300 A %s\"\n", i, indexIP(i))
	}
	for i := range 20 {
		fmt.Fprintf(&conf, "  local-data: 'tc.test. 300 TXT \"%s\"'\n", strings.Repeat(fmt.Sprint(i%10), 200))
	}
	conf.WriteString("remote-control:\n  control-enable: no\n")
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })

	// Ready when the DoT port completes a handshake.
	addr := fmt.Sprintf("127.0.0.1:%d", dotPort)
	for i := 0; ; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.roots})
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
			t.Fatalf("unbound exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			t.Fatalf("unbound not serving DoT after 10 s: %v", err)
		}
	}
	return &unbound{
		dot: "tls://" + addr,
		doh: fmt.Sprintf("https://127.0.0.1:%d/dns-query", dohPort),
		udp: fmt.Sprintf("udp://127.0.0.1:%d", plainPort),
		tcp: fmt.Sprintf("tcp://127.0.0.1:%d", plainPort),
	}
}

// TestConformanceUnbound runs the contract over DoT and DoH (h2) against a
// real Unbound.
func TestConformanceUnbound(t *testing.T) {
	pki := newPKI(t)
	ub := startUnbound(t, pki, 30*time.Second)
	for _, url := range []string{ub.dot, ub.doh} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			newUp := func(t *testing.T) Upstream {
				opts := pki.clientOptions()
				opts.PinSHA256 = []string{SPKIPin(pki.leaf)}
				u, err := Parse(url, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { u.Close() })
				return u
			}
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newUp(t), "WWW.test.", "192.0.2.1") })
			t.Run("NoMutation", func(t *testing.T) { testNoMutation(t, newUp(t)) })
			t.Run("Large", func(t *testing.T) { testTruncated(t, newUp(t), "tc.test.") })
			t.Run("Closed", func(t *testing.T) { testClosed(t, newUp(t)) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newUp(t)) })
		})
	}
}

// TestUnboundIdleClose: Unbound closes idle connections after 250 ms; a
// run with pauses longer than that sees no failure, and the connections are
// counted as reopened. (Much shorter idle times make a loaded test machine
// look idle to Unbound between the handshake and the first query.)
func TestUnboundIdleClose(t *testing.T) {
	pki := newPKI(t)
	ub := startUnbound(t, pki, 250*time.Millisecond)
	for _, url := range []string{ub.dot, ub.doh} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			reg := prometheus.NewRegistry()
			opts := pki.clientOptions()
			opts.Metrics = NewMetrics(reg)
			u, err := Parse(url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			for round := range 3 {
				var wg sync.WaitGroup
				for i := range 20 {
					wg.Go(func() {
						resp, err := u.Exchange(context.Background(), query(fmt.Sprintf("q%d.test.", i), dns.TypeA))
						if err != nil {
							t.Errorf("round %d query %d: %v", round, i, err)
						} else if answerIP(resp) != indexIP(i) {
							t.Errorf("round %d query %d: wrong answer", round, i)
						}
					})
				}
				wg.Wait()
				time.Sleep(500 * time.Millisecond) // past Unbound's idle timeout
			}
			conns := counterValue(t, reg, "lamina_upstream_connections_total", map[string]string{"ech": "false"})
			if conns < 2 {
				t.Errorf("%v connections over 3 idle-separated rounds, want reconnects", conns)
			}
		})
	}
}
