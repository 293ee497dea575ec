package upstream

import (
	"context"
	"fmt"
	"net/netip"
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

// nsd is a real NSD serving example. and test. on 127.0.0.1 with the names
// the conformance suite asks for.
type nsd struct {
	t    testing.TB
	bin  string
	dir  string
	addr netip.AddrPort
	cmd  *exec.Cmd
	done chan struct{}
}

func startNSD(t testing.TB) *nsd {
	t.Helper()
	n := &nsd{t: t, bin: testenv.Tool(t, "nsd"), dir: t.TempDir()}
	n.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testenv.FreePort(t)))
	var test strings.Builder
	test.WriteString(zoneHead("test."))
	test.WriteString("www A 192.0.2.1\n")
	for i := range 100 {
		fmt.Fprintf(&test, "q%d A %s\n", i, indexIP(i))
	}
	for i := range 20 { // about 4 kB: truncated over UDP, whole over TCP
		fmt.Fprintf(&test, "tc TXT \"%s\"\n", strings.Repeat(fmt.Sprint(i%10), 200))
	}
	files := map[string]string{
		"test.zone":    test.String(),
		"example.zone": zoneHead("example.") + "www A 192.0.2.1\n",
		"nsd.conf": fmt.Sprintf(`server:
  ip-address: 127.0.0.1
  port: %d
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  zonelistfile: %q
  xfrdfile: %q
  xfrdir: %q
  pidfile: %q
  logfile: %q
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: test.
  zonefile: test.zone
zone:
  name: example.
  zonefile: example.zone
`, n.addr.Port(), n.dir, n.path("zone.list"), n.path("xfrd.state"), n.dir, n.path("nsd.pid"), n.path("nsd.log")),
	}
	for name, body := range files {
		if err := os.WriteFile(n.path(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func zoneHead(origin string) string {
	return fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns.%s admin.%s 1 3600 600 86400 300\n@ NS ns.%s\nns A 127.0.0.1\n",
		origin, origin, origin, origin)
}

func (n *nsd) path(name string) string { return filepath.Join(n.dir, name) }

// start runs NSD in the foreground and waits until it answers.
func (n *nsd) start() {
	n.t.Helper()
	n.cmd = exec.Command(n.bin, "-d", "-c", n.path("nsd.conf"))
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	for range 100 {
		if _, _, err := c.Exchange(query("www.test.", dns.TypeA), n.addr.String()); err == nil {
			return
		}
		select {
		case <-n.done:
			log, _ := os.ReadFile(n.path("nsd.log"))
			n.t.Fatalf("nsd exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.t.Fatal("nsd did not answer within 10 s")
}

// stop kills NSD and waits for it to exit.
func (n *nsd) stop() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// TestConformanceNSD runs the transport contract against a real NSD.
func TestConformanceNSD(t *testing.T) {
	srv := startNSD(t)
	for _, tr := range plainTransports {
		t.Run(tr.name, func(t *testing.T) {
			newUp := func(t *testing.T) Upstream {
				u := tr.new(t, srv.addr, Options{})
				t.Cleanup(func() { u.Close() })
				return u
			}
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newUp(t), "WwW.TeSt.", "192.0.2.1") })
			t.Run("NoMutation", func(t *testing.T) { testNoMutation(t, newUp(t)) })
			t.Run("Truncated", func(t *testing.T) { testTruncated(t, newUp(t), "tc.test.") })
			t.Run("Closed", func(t *testing.T) { testClosed(t, newUp(t)) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newUp(t)) })
		})
	}
}

// TestGroupFailoverNSD: two NSDs behind a failover group under steady
// concurrent load; the first is killed mid-run and later restarted. No query
// fails, and the restarted one is probed back and used again.
func TestGroupFailoverNSD(t *testing.T) {
	n1, n2 := startNSD(t), startNSD(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	u1 := NewUDP(n1.addr, Options{Metrics: m})
	okCount := func() float64 {
		return counterValue(t, reg, "lamina_upstream_exchanges_total", map[string]string{"upstream": u1.String(), "result": "ok"})
	}
	g := newGroup(t, GroupConfig{
		Strategy: Failover, ProbeInterval: 20 * time.Millisecond, ProbeMaxInterval: 100 * time.Millisecond,
		ProbeName: "test.",
		Upstreams: []Upstream{u1, NewTCP(n2.addr, Options{Metrics: m})},
	})
	run := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() {
				resp, err := g.Exchange(context.Background(), query(fmt.Sprintf("q%d.test.", i%100), dns.TypeA))
				if err != nil {
					t.Errorf("query %d: %v", i, err)
				} else if got := answerIP(resp); got != indexIP(i%100) {
					t.Errorf("query %d: %s", i, got)
				}
			})
			if i%20 == 19 {
				wg.Wait()
			}
		}
		wg.Wait()
	}
	run(0, 100)
	n1.stop()
	run(100, 300)
	if !g.members[0].down.Load() {
		t.Fatal("stopped NSD not marked down")
	}
	n1.start()
	for i := 0; g.members[0].down.Load(); i++ {
		if i > 500 {
			t.Fatal("restarted NSD not probed back up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := okCount()
	run(300, 400)
	if got := okCount() - before; got < 100 {
		t.Fatalf("restarted NSD answered %v of 100 queries", got)
	}
}
