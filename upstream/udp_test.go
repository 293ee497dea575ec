package upstream

import (
	"context"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestUDPMismatchIgnored: a wrong ID, a wrong question and garbage arrive
// before the answer; all three are dropped and counted, the answer taken.
func TestUDPMismatchIgnored(t *testing.T) {
	srv := startServer(t)
	reg := prometheus.NewRegistry()
	u := NewUDP(srv.addr, Options{Metrics: NewMetrics(reg)})
	defer u.Close()
	resp, err := u.Exchange(context.Background(), query("MisMatch.test.", dns.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	if got := answerIP(resp); got != "192.0.2.7" {
		t.Fatalf("answer %q, want 192.0.2.7", got)
	}
	for reason, want := range map[string]float64{"id": 1, "question": 1, "malformed": 1} {
		got := counterValue(t, reg, "lamina_upstream_dropped_responses_total",
			map[string]string{"upstream": u.String(), "reason": reason})
		if got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestUDPSourcePortsVary: a socket, and so a random source port, serves at
// most UDPSocketUses queries (RFC 5452 §9.2); IDs are fresh per query.
func TestUDPSourcePortsVary(t *testing.T) {
	for _, uses := range []int{1, 4} {
		var mu sync.Mutex
		ports := map[string]int{}
		ids := map[uint16]bool{}
		srv := &dns.Server{Net: "udp", Addr: "127.0.0.1:0"}
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		srv.Handler = dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			mu.Lock()
			ports[w.RemoteAddr().String()]++
			ids[r.Id] = true
			mu.Unlock()
			m := new(dns.Msg)
			m.SetReply(r)
			w.WriteMsg(m)
		})
		go srv.ListenAndServe()
		<-started
		u, err := Parse("udp://"+srv.PacketConn.LocalAddr().String(), Options{UDPSocketUses: uses})
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		for range n {
			if _, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
		}
		u.Close()
		srv.Shutdown()
		mu.Lock()
		if len(ids) < n-2 {
			t.Errorf("%d queries used %d IDs", n, len(ids))
		}
		for port, k := range ports {
			if k > uses {
				t.Errorf("uses=%d: port %s served %d queries", uses, port, k)
			}
		}
		if len(ports) < n/uses {
			t.Errorf("uses=%d: %d queries used %d ports", uses, n, len(ports))
		}
		mu.Unlock()
	}
}

// TestUDPTruncatedWithoutTCP: when the TCP retry of a TC answer fails, the
// truncated answer is returned rather than an error.
func TestUDPTruncatedWithoutTCP(t *testing.T) {
	srv := startServer(t)
	srv.tcp.Shutdown() // UDP only from now on
	u := NewUDP(srv.addr, Options{})
	defer u.Close()
	resp, err := u.Exchange(context.Background(), query("tc.test.", dns.TypeTXT))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Truncated {
		t.Fatal("want the truncated UDP answer")
	}
}
