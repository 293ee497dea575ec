package upstream

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
)

// startDnsdist runs a real dnsdist with DoT and DoH frontends on 127.0.0.1
// in front of backend (plain DNS), and returns their URLs.
func startDnsdist(t testing.TB, pki *testPKI, backend string) (dot, doh string) {
	t.Helper()
	bin := testenv.Tool(t, "dnsdist")
	dir := t.TempDir()
	ports := map[int]bool{}
	for len(ports) < 3 {
		ports[testenv.FreePort(t)] = true
	}
	var p []int
	for port := range ports {
		p = append(p, port)
	}
	conf := fmt.Sprintf(`setLocal('127.0.0.1:%d')
addTLSLocal('127.0.0.1:%d', %q, %q)
addDOHLocal('127.0.0.1:%d', %q, %q, '/dns-query')
newServer({address=%q})
setACL({'127.0.0.0/8'})
`, p[0], p[1], pki.certFile, pki.keyFile, p[2], pki.certFile, pki.keyFile, backend)
	path := filepath.Join(dir, "dnsdist.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--supervised", "--disable-syslog", "-C", path)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	addr := fmt.Sprintf("127.0.0.1:%d", p[1])
	for i := 0; ; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.roots})
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("dnsdist exited: %s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			t.Fatalf("dnsdist not serving DoT after 10 s: %v", err)
		}
	}
	return "tls://" + addr, fmt.Sprintf("https://127.0.0.1:%d/dns-query", p[2])
}

// TestConformanceDnsdist runs the contract over DoT and DoH against a real
// dnsdist in front of the in-process server.
func TestConformanceDnsdist(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t)
	dot, doh := startDnsdist(t, pki, srv.addr.String())
	for _, url := range []string{dot, doh} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			newUp := func(t *testing.T) Upstream {
				u, err := Parse(url, pki.clientOptions())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { u.Close() })
				return u
			}
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newUp(t), "www.example.", "192.0.2.1") })
			t.Run("NoMutation", func(t *testing.T) { testNoMutation(t, newUp(t)) })
			t.Run("Closed", func(t *testing.T) { testClosed(t, newUp(t)) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newUp(t)) })
		})
	}
}
