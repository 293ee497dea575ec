package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// encryptedTransports start s's answers behind each encrypted transport and
// return the upstream URL.
var encryptedTransports = []struct {
	name  string
	start func(t testing.TB, s *testServer, p *testPKI) string
}{
	{"dot", func(t testing.TB, s *testServer, p *testPKI) string {
		return "tls://" + s.startDoT(t, p.serverConfig("dot")).String()
	}},
	{"doh-h2", func(t testing.TB, s *testServer, p *testPKI) string {
		return s.startDoH(t, p.serverConfig("h2", "http/1.1"), s.dohHandler)
	}},
	{"doh-http1", func(t testing.TB, s *testServer, p *testPKI) string {
		return s.startDoH(t, p.serverConfig("http/1.1"), s.dohHandler)
	}},
	{"doh-h3", func(t testing.TB, s *testServer, p *testPKI) string { return s.startH3(t, p.serverConfig()) }},
	{"doq", func(t testing.TB, s *testServer, p *testPKI) string {
		return "quic://" + s.startDoQ(t, p.serverConfig("doq")).String()
	}},
}

// TestConformanceEncrypted runs the Upstream contract over every encrypted
// transport against in-process servers with a per-test CA.
func TestConformanceEncrypted(t *testing.T) {
	pki := newPKI(t)
	for _, tr := range encryptedTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := startServer(t)
			url := tr.start(t, srv, pki)
			newUp := func(t *testing.T, timeout time.Duration) Upstream {
				opts := pki.clientOptions()
				opts.Timeout = timeout
				u, err := Parse(url, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { u.Close() })
				return u
			}
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newUp(t, 0), "www.example.", "192.0.2.1") })
			t.Run("NoMutation", func(t *testing.T) { testNoMutation(t, newUp(t, 0)) })
			t.Run("Large", func(t *testing.T) { testTruncated(t, newUp(t, 0), "tc.test.") })
			t.Run("Cancel", func(t *testing.T) { testCancel(t, newUp(t, time.Minute)) })
			t.Run("Timeout", func(t *testing.T) { testTimeout(t, newUp(t, 300*time.Millisecond)) })
			t.Run("Closed", func(t *testing.T) { testClosed(t, newUp(t, 0)) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newUp(t, 0)) })
		})
	}
}

// TestGroupEncrypted: the group strategies over encrypted transports; the
// DoT server dies mid-run and no query fails.
func TestGroupEncrypted(t *testing.T) {
	pki := newPKI(t)
	for _, s := range []Strategy{Failover, Race, RoundRobin, Fastest} {
		t.Run(s.String(), func(t *testing.T) {
			dotSrv, backup := startServer(t), startServer(t)
			l, err := tls.Listen("tcp", "127.0.0.1:0", pki.serverConfig("dot"))
			if err != nil {
				t.Fatal(err)
			}
			dot := &dns.Server{Listener: l, Net: "tcp-tls", Handler: dns.HandlerFunc(dotSrv.serve)}
			started := make(chan struct{})
			dot.NotifyStartedFunc = func() { close(started) }
			go dot.ActivateAndServe()
			<-started
			var stopOnce sync.Once
			stop := func() { stopOnce.Do(func() { dot.Shutdown() }) }
			t.Cleanup(stop)

			var ups []Upstream
			for _, url := range []string{
				"tls://" + l.Addr().String(),
				"quic://" + backup.startDoQ(t, pki.serverConfig("doq")).String(),
				backup.startDoH(t, pki.serverConfig("h2"), backup.dohHandler),
			} {
				u, err := Parse(url, pki.clientOptions())
				if err != nil {
					t.Fatal(err)
				}
				ups = append(ups, u)
			}
			g := newGroup(t, GroupConfig{Strategy: s, Upstreams: ups, ProbeInterval: time.Hour})
			var wg sync.WaitGroup
			for i := range 150 {
				if i == 50 {
					stop()
				}
				wg.Go(func() {
					resp, err := g.Exchange(context.Background(), query(fmt.Sprintf("q%d.test.", i%100), dns.TypeA))
					if err != nil {
						t.Errorf("query %d: %v", i, err)
					} else if answerIP(resp) != indexIP(i%100) {
						t.Errorf("query %d: wrong answer", i)
					}
				})
				if i%10 == 9 {
					wg.Wait()
				}
			}
			wg.Wait()
		})
	}
}

// TestDoQServerCloses: the server closes the QUIC connection after every
// answer; queries keep succeeding on fresh connections.
func TestDoQServerCloses(t *testing.T) {
	pki := newPKI(t)
	srv := startServer(t)
	srv.closeAfterAnswer.Store(true)
	u, err := Parse("quic://"+srv.startDoQ(t, pki.serverConfig("doq")).String(), pki.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i := range 10 {
		if i%3 == 0 {
			time.Sleep(20 * time.Millisecond) // now and then the close has arrived
		}
		testRoundTrip(t, u, "www.example.", "192.0.2.1")
	}
}

// TestQUICIdleClose: DoQ and DoH3 servers with a 1 s idle timeout that
// drop idle connections silently; rounds of queries separated by longer
// pauses all succeed. (The quic-go client does not shorten its idle timer
// to the server's, so it learns of the drop only by the silence.)
func TestQUICIdleClose(t *testing.T) {
	pki := newPKI(t)
	for _, tt := range []struct {
		name  string
		start func(s *testServer) string
	}{
		{"doq", func(s *testServer) string { return "quic://" + s.startDoQ(t, pki.serverConfig("doq")).String() }},
		{"doh-h3", func(s *testServer) string { return s.startH3(t, pki.serverConfig()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t)
			srv.shortIdle.Store(true)
			u, err := Parse(tt.start(srv), pki.clientOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			switch d := u.(type) {
			case *DoQ:
				d.suspectIdle, d.suspectWait = 200*time.Millisecond, 200*time.Millisecond
			case *DoH:
				d.suspectIdle, d.suspectWait = 200*time.Millisecond, 200*time.Millisecond
			}
			testConcurrent(t, u)
			time.Sleep(1500 * time.Millisecond)
			testConcurrent(t, u)
		})
	}
}
