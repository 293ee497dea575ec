package do53

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
)

// clientServer runs UDP, TCP and DoT listeners with one Handler, the Do53 pair
// on one port as clients expect. It answers big.example. with 120 A records
// (too large for UDP) and records each query's client address and transport.
type clientServer struct {
	port, tlsPort int

	mu      sync.Mutex
	clients map[string]int // "transport client" → queries
}

func (cs *clientServer) ServeDNS(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
	cs.mu.Lock()
	cs.clients[q.Transport.String()+" "+q.Client.String()]++
	cs.mu.Unlock()
	if q.Msg.Question[0].Name == "big.example." {
		m := new(dns.Msg).SetReply(q.Msg)
		for i := range 120 {
			m.Answer = append(m.Answer, mustRR(fmt.Sprintf("big.example. 60 IN A 192.0.2.%d", i)))
		}
		return m, nil
	}
	m, _ := answerA(ctx, q)
	if o := q.Msg.IsEdns0(); o != nil {
		// Behave like a careless upstream: echo every option (the client's
		// cookie among them) and add an NSID. Reply must strip them all.
		m.SetEdns0(4096, false)
		m.IsEdns0().Option = append(o.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6c616d696e61"})
	}
	return m, nil
}

func startClientServer(t *testing.T) *clientServer {
	cs := &clientServer{clients: map[string]int{}}
	cs.port = testenv.FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cs.port))
	u, err := NewServer(Config{Handler: cs})
	if err != nil {
		t.Fatal(err)
	}
	pcs, err := ListenUDP(context.Background(), addr, 2)
	if err != nil {
		t.Fatal(err)
	}
	udone := make(chan error, 1)
	go func() { udone <- u.Serve(pcs...) }()
	t.Cleanup(func() { u.Shutdown(context.Background()); <-udone })

	cfg := StreamConfig{Config: Config{Handler: cs}}
	for _, tr := range []resolver.Transport{resolver.TCP, resolver.TLS} {
		cfg.Transport = tr
		s, err := NewStreamServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener
		if tr == resolver.TCP {
			l, err = net.Listen("tcp", addr)
		} else {
			cert, _ := testCert(t)
			l, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		}
		if err != nil {
			t.Fatal(err)
		}
		if tr == resolver.TLS {
			cs.tlsPort = l.Addr().(*net.TCPAddr).Port
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		t.Cleanup(func() { s.Shutdown(context.Background()); <-done })
	}
	return cs
}

// conns counts distinct client addresses seen on a transport.
func (cs *clientServer) conns(tr string) int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for k := range cs.clients {
		if strings.HasPrefix(k, tr+" ") {
			n++
		}
	}
	return n
}

func run(t *testing.T, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Tool(t, tool), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRealClients queries the listeners with kdig and dig. The Handler echoes
// every EDNS option and adds an NSID, like a careless upstream; no client may
// see a cookie or NSID come back.
func TestRealClients(t *testing.T) {
	testenv.Tool(t, "kdig")
	testenv.Tool(t, "dig")
	cs := startClientServer(t)
	port, tlsPort := strconv.Itoa(cs.port), strconv.Itoa(cs.tlsPort)
	tests := []struct {
		name string
		tool string
		args []string
		want []string
	}{
		{"kdig udp", "kdig", []string{"a.example", "A"}, []string{"status: NOERROR", "192.0.2.1", "UDP"}},
		{"kdig tcp", "kdig", []string{"+tcp", "a.example", "A"}, []string{"192.0.2.1", "TCP"}},
		{"kdig edns", "kdig", []string{"+edns", "+nsid", "a.example", "A"}, []string{"192.0.2.1", "Version: 0; flags: ; UDP size: 1232 B"}},
		{"kdig tc falls back to tcp", "kdig", []string{"big.example", "A"}, []string{"192.0.2.119", "TCP"}},
		{"kdig badvers", "kdig", []string{"+edns=1", "a.example", "A"}, []string{"status: BADVERS"}},
		{"kdig dot padding", "kdig", []string{"-p", tlsPort, "+tls", "+padding", "a.example", "A"}, []string{"192.0.2.1", "Received 468 B"}},
		{"dig udp", "dig", []string{"a.example", "A"}, []string{"status: NOERROR", "192.0.2.1", "(UDP)"}},
		{"dig tcp", "dig", []string{"+tcp", "a.example", "A"}, []string{"192.0.2.1", "(TCP)"}},
		{"dig tc falls back to tcp", "dig", []string{"big.example", "A"}, []string{"Truncated, retrying in TCP mode", "192.0.2.119"}},
		{"dig tcp keepalive", "dig", []string{"+tcp", "+keepalive", "a.example", "A"}, []string{"192.0.2.1", "KEEPALIVE: 10.0"}},
		{"dig cookie", "dig", []string{"+cookie", "a.example", "A"}, []string{"192.0.2.1", "udp: 1232"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A later -p overrides the first.
			out := run(t, tt.tool, append([]string{"@127.0.0.1", "-p", port}, tt.args...)...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "NSID") || strings.Contains(out, "COOKIE") {
				t.Fatalf("an upstream option reached the client:\n%s", out)
			}
		})
	}
	t.Run("kdig tcp reused connection", func(t *testing.T) {
		before := cs.conns("tcp")
		out := run(t, "kdig", "@127.0.0.1", "-p", port, "+tcp", "+keepopen", "one.example", "A", "two.example", "A", "three.example", "A")
		if strings.Count(out, "192.0.2.1") != 3 {
			t.Fatalf("want 3 answers:\n%s", out)
		}
		if n := cs.conns("tcp") - before; n != 1 {
			t.Fatalf("3 queries over %d connections, want 1", n)
		}
	})
}

// TestDnsperf drives the UDP, TCP and DoT listeners with dnsperf, a real load
// generator that pipelines many queries per TCP and TLS connection, at a
// moderate rate, and requires every query answered.
func TestDnsperf(t *testing.T) {
	testenv.Tool(t, "dnsperf")
	cs := startClientServer(t)
	var names strings.Builder
	for i := range 200 {
		fmt.Fprintf(&names, "host%d.example A\n", i)
	}
	file := t.TempDir() + "/queries"
	if err := os.WriteFile(file, []byte(names.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		port int
	}{{"udp", cs.port}, {"tcp", cs.port}, {"dot", cs.tlsPort}} {
		t.Run(tc.mode, func(t *testing.T) {
			out := run(t, "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(tc.port), "-m", tc.mode,
				"-d", file, "-l", "1", "-Q", "2000", "-c", "2", "-q", "50")
			if !strings.Contains(out, "Queries lost:         0 (") || strings.Contains(out, "Queries completed:    0 ") {
				t.Fatalf("dnsperf -m %s lost queries:\n%s", tc.mode, out)
			}
			t.Logf("%s: %s", tc.mode, line(out, "Queries per second"))
		})
	}
}

func line(out, prefix string) string {
	for l := range strings.Lines(out) {
		if strings.Contains(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
