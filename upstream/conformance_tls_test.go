package upstream

import (
	"testing"
	"time"
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
