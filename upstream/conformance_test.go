package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// transport is one way to reach a test server, for the conformance suite.
type transport struct {
	name string
	new  func(t testing.TB, addr netip.AddrPort, opts Options) Upstream
}

// plainTransports are every transport that needs no TLS.
var plainTransports = []transport{
	{"udp", func(t testing.TB, a netip.AddrPort, o Options) Upstream { return NewUDP(a, o) }},
	{"tcp", func(t testing.TB, a netip.AddrPort, o Options) Upstream { return NewTCP(a, o) }},
}

// TestConformance runs the contract every Upstream must keep over each
// transport against the in-process server.
func TestConformance(t *testing.T) {
	for _, tr := range plainTransports {
		t.Run(tr.name, func(t *testing.T) {
			srv := startServer(t)
			newUp := func(t *testing.T, opts Options) Upstream {
				u := tr.new(t, srv.addr, opts)
				t.Cleanup(func() { u.Close() })
				return u
			}
			t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newUp(t, Options{}), "www.example.", "192.0.2.1") })
			t.Run("NoMutation", func(t *testing.T) { testNoMutation(t, newUp(t, Options{})) })
			t.Run("Truncated", func(t *testing.T) { testTruncated(t, newUp(t, Options{}), "tc.test.") })
			t.Run("Cancel", func(t *testing.T) { testCancel(t, newUp(t, Options{Timeout: time.Minute})) })
			t.Run("Timeout", func(t *testing.T) { testTimeout(t, newUp(t, Options{Timeout: 200 * time.Millisecond})) })
			t.Run("Closed", func(t *testing.T) { testClosed(t, newUp(t, Options{})) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newUp(t, Options{})) })
			t.Run("Metrics", func(t *testing.T) {
				reg := prometheus.NewPedanticRegistry()
				u := newUp(t, Options{Metrics: NewMetrics(reg)})
				testRoundTrip(t, u, "www.example.", "192.0.2.1")
				if _, err := u.Exchange(context.Background(), query("servfail.test.", dns.TypeA)); err != nil {
					t.Fatal(err)
				}
				for result, want := range map[string]float64{"ok": 1, "servfail": 1, "timeout": 0} {
					c := counterValue(t, reg, "lamina_upstream_exchanges_total", map[string]string{"upstream": u.String(), "result": result})
					if c != want {
						t.Errorf("exchanges{result=%s} = %v, want %v", result, c, want)
					}
				}
			})
		})
	}
}

func testRoundTrip(t *testing.T, u Upstream, name, wantIP string) {
	t.Helper()
	req := query(name, dns.TypeA)
	req.Id = 4242
	resp, err := u.Exchange(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != 4242 {
		t.Errorf("response ID %d, want the request's 4242", resp.Id)
	}
	if got := answerIP(resp); got != wantIP {
		t.Errorf("answer %q, want %s", got, wantIP)
	}
}

// testNoMutation checks that Exchange leaves req byte-for-byte unchanged,
// EDNS included, while other exchanges share it.
func testNoMutation(t *testing.T, u Upstream) {
	req := query("www.example.", dns.TypeA)
	req.SetEdns0(1232, true)
	req.Id = 7
	before, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := u.Exchange(context.Background(), req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	after, _ := req.Pack()
	if string(before) != string(after) || req.Id != 7 {
		t.Fatal("Exchange modified the request")
	}
}

func testTruncated(t *testing.T, u Upstream, name string) {
	resp, err := u.Exchange(context.Background(), query(name, dns.TypeTXT))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Truncated || len(resp.Answer) < 2 {
		t.Fatalf("got TC=%v with %d answers, want the full answer over TCP", resp.Truncated, len(resp.Answer))
	}
}

func testCancel(t *testing.T, u Upstream) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := u.Exchange(ctx, query("slow.test.", dns.TypeA))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second): // the upstream's timeout is a minute
		t.Fatal("Exchange did not return after cancel")
	}
}

func testTimeout(t *testing.T, u Upstream) {
	_, err := u.Exchange(context.Background(), query("slow.test.", dns.TypeA))
	if !errors.Is(err, ErrTimeout) || !isTimeout(err) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func testClosed(t *testing.T, u Upstream) {
	if _, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA))
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: err = %v, want net.ErrClosed", err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// testConcurrent sends 100 distinct queries at once; each must get its own
// answer (on streams they are pipelined and matched by ID).
func testConcurrent(t *testing.T, u Upstream) {
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			resp, err := u.Exchange(context.Background(), query(fmt.Sprintf("q%d.test.", i), dns.TypeA))
			if err != nil {
				t.Error(err)
				return
			}
			if got, want := answerIP(resp), indexIP(i); got != want {
				t.Errorf("query %d got %s, want %s", i, got, want)
			}
		})
	}
	wg.Wait()
}

// counterValue reads one labelled sample from reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}
