package resolver

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/upstream"
)

// nsd is a real NSD on 127.0.0.1 serving the given zones (origin → records).
type nsd struct {
	addr netip.AddrPort
	cmd  *exec.Cmd
	done chan struct{}
}

func startNSD(t *testing.T, zones map[string]string) *nsd {
	t.Helper()
	bin := testenv.Tool(t, "nsd")
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	n := &nsd{addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testenv.FreePort(t)))}
	conf := fmt.Sprintf(`server:
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
remote-control:
  control-enable: no
`, n.addr.Port(), dir, path("zone.list"), path("xfrd.state"), dir, path("nsd.pid"), path("nsd.log"))
	for origin, records := range zones {
		body := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n%s", origin, records)
		if err := os.WriteFile(path(origin+"zone"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("zone:\n  name: %s\n  zonefile: %szone\n", origin, origin)
	}
	if err := os.WriteFile(path("nsd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "-d", "-c", path("nsd.conf"))
	n.cmd.Stderr = os.Stderr
	// NSD forks its server and xfrd processes: a process group stops them all.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(n.stop)
	c := &dns.Client{Timeout: 100 * time.Millisecond}
	probe := new(dns.Msg)
	for origin := range zones {
		probe.SetQuestion(origin, dns.TypeSOA)
	}
	for range 100 {
		if _, _, err := c.Exchange(probe, n.addr.String()); err == nil {
			return n
		}
		select {
		case <-n.done:
			log, _ := os.ReadFile(path("nsd.log"))
			t.Fatalf("nsd exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("nsd did not answer within 10 s")
	return nil
}

func (n *nsd) stop() {
	if n.cmd != nil {
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
		n.cmd = nil
	}
}

func nsdGroup(t *testing.T, rawURL string) upstream.Upstream {
	t.Helper()
	u, err := upstream.Parse(rawURL, upstream.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g, err := upstream.NewGroup(upstream.GroupConfig{Upstreams: []upstream.Upstream{u}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestSplitHorizonNSD forwards through the real UDP and TCP upstreams to two
// NSD instances that both serve corp.example. with different data: the inside
// view must win for corp.example. names, the outside view serves the rest.
func TestSplitHorizonNSD(t *testing.T) {
	inside := startNSD(t, map[string]string{"corp.example.": "www A 10.0.0.1\nmail A 10.0.0.25\n"})
	outside := startNSD(t, map[string]string{
		"corp.example.":  "www A 192.0.2.66\n",
		"xcorp.example.": "www A 192.0.2.77\n",
		"example.net.":   "www A 192.0.2.1\n",
	})
	c := newMemCache()
	r := mustNew(t, Config{
		Routes: []Route{
			{Zone: "Corp.Example", Upstream: nsdGroup(t, "udp://"+inside.addr.String())},
			{Zone: ".", Upstream: nsdGroup(t, "tcp://"+outside.addr.String())},
		},
		Cache: c,
	})
	tests := []struct {
		name  string
		rcode int
		addr  string
	}{
		{"www.corp.example.", dns.RcodeSuccess, "10.0.0.1"},
		{"WWW.CORP.EXAMPLE.", dns.RcodeSuccess, "10.0.0.1"},
		{"mail.corp.example.", dns.RcodeSuccess, "10.0.0.25"},
		{"www.xcorp.example.", dns.RcodeSuccess, "192.0.2.77"},
		{"www.example.net.", dns.RcodeSuccess, "192.0.2.1"},
		{"nope.corp.example.", dns.RcodeNameError, ""},
		{"www.example.org.", dns.RcodeRefused, ""}, // NSD's answer for a zone it lacks
	}
	for _, tt := range tests {
		q := query(tt.name, dns.TypeA)
		q.Msg.IsEdns0().Option = append(q.Msg.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		m := serve(t, r, q)
		if m.Rcode != tt.rcode {
			t.Errorf("%s: rcode %s, want %s", tt.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
			continue
		}
		if tt.addr != "" && (len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != tt.addr || m.Answer[0].Header().Name != tt.name) {
			t.Errorf("%s: answer %v, want %s", tt.name, m.Answer, tt.addr)
		}
		if tt.rcode == dns.RcodeNameError && (len(m.Ns) == 0 || m.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Errorf("%s: NXDOMAIN without SOA: %v", tt.name, m.Ns)
		}
		if m.Authoritative {
			t.Errorf("%s: forwarded answer has AA set", tt.name)
		}
	}

	// Filled by the first pass: answered on the fast path.
	q := query("www.CORP.example.", dns.TypeA)
	out, ok := r.ServeWire(q, pack(t, q.Msg), nil)
	var m dns.Msg
	if !ok || m.Unpack(out) != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
		t.Fatalf("cached inside answer not served from the wire path: ok=%v %v", ok, &m)
	}

	// The inside server goes away: uncached names get SERVFAIL saying why.
	inside.stop()
	resp := serve(t, r, query("other.corp.example.", dns.TypeA))
	code, _ := ede(resp)
	if resp.Rcode != dns.RcodeServerFailure ||
		(code != dns.ExtendedErrorCodeNoReachableAuthority && code != dns.ExtendedErrorCodeNetworkError) {
		t.Errorf("inside server down: %s EDE %d, want SERVFAIL with EDE 22 or 23", dns.RcodeToString[resp.Rcode], code)
	}
	if m := serve(t, r, query("www.example.net.", dns.TypeAAAA)); m.Rcode != dns.RcodeSuccess {
		t.Errorf("outside view affected: %s", dns.RcodeToString[m.Rcode])
	}
}
