package do53

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// TestStreamPipelinedOutOfOrder sends three queries on one connection, the
// first of which is slow, and checks the two fast answers arrive before it
// (RFC 7766 §6.2.1.1). The slow handler is released only after both fast
// answers were read, so an in-order server fails rather than passes slowly.
func TestStreamPipelinedOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		if q.Msg.Question[0].Name == "slow.example." {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return answerA(ctx, q)
	})
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: h}}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	slow, fast1, fast2 := query("slow.example.", dns.TypeA), query("fast1.example.", dns.TypeA), query("fast2.example.", dns.TypeA)
	// One write: the three frames arrive together.
	var buf []byte
	for _, m := range []*dns.Msg{slow, fast1, fast2} {
		b := pack(t, m)
		buf = append(append(buf, byte(len(b)>>8), byte(len(b))), b...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	got := map[uint16]bool{}
	for range 2 {
		r := readFrame(t, c)
		if r.Id == slow.Id {
			t.Fatal("slow answer came before the fast ones")
		}
		got[r.Id] = true
	}
	if !got[fast1.Id] || !got[fast2.Id] {
		t.Fatalf("fast answers: %v", got)
	}
	close(release)
	if r := readFrame(t, c); r.Id != slow.Id || len(r.Answer) != 1 {
		t.Fatalf("slow answer: %v", r)
	}
}

func TestStreamInFlightBound(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		return answerA(ctx, q)
	})
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: h, MaxInFlight: 3}}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 10 {
		writeFrame(t, c, query("q.example.", dns.TypeA))
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 10 {
		readFrame(t, c)
	}
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak concurrency %d, want 3", p)
	}
}

func TestStreamTimeoutsAndGarbage(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cfg := StreamConfig{
		Config:      Config{Handler: resolver.HandlerFunc(answerA), Metrics: m},
		IdleTimeout: 100 * time.Millisecond,
		ReadTimeout: 100 * time.Millisecond,
	}
	_, addr := startStream(t, cfg, nil)
	tests := []struct {
		name string
		send []byte
	}{
		{"idle", nil},
		{"stalled in length", []byte{0}},
		{"stalled in body", []byte{0, 40, 1, 2, 3}},
		{"zero-length frame", []byte{0, 0}},
		{"header-less frame", []byte{0, 3, 1, 2, 3}},
		{"compression loop", append([]byte{0, byte(len(compressionLoop))}, compressionLoop...)},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, c)
			// Others are still served.
			if r := exchange(t, "tcp", addr, query("ok.example.", dns.TypeA)); len(r.Answer) != 1 {
				t.Fatalf("not answered after %s", tt.name)
			}
		})
	}
}

// TestStreamIdleWithQueryInFlight: the idle timeout does not cut a
// connection whose answer is still being worked on.
func TestStreamIdleWithQueryInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		close(entered)
		<-release
		return answerA(ctx, q)
	})
	s, addr := startStream(t, StreamConfig{Config: Config{Handler: h}, IdleTimeout: 20 * time.Millisecond}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, query("slow.example.", dns.TypeA))
	<-entered
	// Several idle timeouts pass while the query is in flight.
	var cn *conn
	s.mu.Lock()
	for o := range s.conns {
		cn = o
	}
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; n < 5 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if cn.inflight.Load() == 1 {
			n++
		}
	}
	close(release)
	if r := readFrame(t, c); len(r.Answer) != 1 {
		t.Fatal(r)
	}
	waitClosed(t, c) // and then it idles out
}

func TestStreamMaxConnsEvictsOldestIdle(t *testing.T) {
	release := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		if q.Msg.Question[0].Name == "busy.example." {
			<-release
		}
		return answerA(ctx, q)
	})
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s, addr := startStream(t, StreamConfig{Config: Config{Handler: h, Metrics: m}, MaxConns: 3}, nil)
	dial := func(name string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		writeFrame(t, c, query(name, dns.TypeA))
		if name != "busy.example." {
			readFrame(t, c)
		}
		return c
	}
	busy := dial("busy.example.") // oldest, but never idle
	deadline := time.Now().Add(5 * time.Second)
	for m.conns != nil && value(m.conns.WithLabelValues("tcp")) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for busyInFlight(s) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	old := dial("old.example.")
	recent := dial("recent.example.")
	newest := dial("new.example.") // at the cap: "old" goes
	waitClosed(t, old)
	for _, c := range []net.Conn{recent, newest} {
		writeFrame(t, c, query("again.example.", dns.TypeA))
		readFrame(t, c)
	}
	close(release)
	if r := readFrame(t, busy); len(r.Answer) != 1 {
		t.Fatal(r)
	}
}

func busyInFlight(s *StreamServer) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int32
	for c := range s.conns {
		n += c.inflight.Load()
	}
	return n
}

func TestStreamMaxConnsAllBusyRefuses(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return answerA(ctx, q)
	})
	s, addr := startStream(t, StreamConfig{Config: Config{Handler: h}, MaxConns: 1}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, query("busy.example.", dns.TypeA))
	deadline := time.Now().Add(5 * time.Second)
	for busyInFlight(s) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitClosed(t, c2)
}

func TestStreamShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		close(entered)
		<-release
		return answerA(ctx, q)
	})
	s, err := NewStreamServer(StreamConfig{Config: Config{Handler: h}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := query("drain.example.", dns.TypeA)
	writeFrame(t, c, q)
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a query in flight", err)
	default:
	}
	close(release)
	if r := readFrame(t, c); r.Id != q.Id || len(r.Answer) != 1 {
		t.Fatalf("in-flight answer: %v", r)
	}
	waitClosed(t, c)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
}

func TestStreamHalfCloseStillAnswered(t *testing.T) {
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: resolver.HandlerFunc(answerA)}}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	writeFrame(t, c, query("a.example.", dns.TypeA))
	writeFrame(t, c, query("b.example.", dns.TypeA))
	c.(*net.TCPConn).CloseWrite()
	readFrame(t, c)
	readFrame(t, c)
	waitClosed(t, c)
}

// TestStreamKeepaliveAndFastPath: a query with edns-tcp-keepalive is
// answered on the fast path with the listener's idle timeout added.
func TestStreamKeepaliveAndFastPath(t *testing.T) {
	var slow, fast atomic.Int32
	wire := pack(t, answerAMsg("a.example."))
	withEDNS := answerAMsg("a.example.")
	withEDNS.SetEdns0(1232, false)
	wireEDNS := pack(t, withEDNS)
	h := &wireFake{
		HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
			slow.Add(1)
			return answerA(ctx, q)
		},
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if q.MaxSize != 65535 || q.Transport != resolver.TCP {
				return nil, false
			}
			fast.Add(1)
			if raw[11] == 1 { // an OPT record: the answer has one too (RFC 6891 §7)
				return staticWire(wireEDNS)(q, raw, dst)
			}
			return staticWire(wire)(q, raw, dst)
		},
	}
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: h}, IdleTimeout: 30 * time.Second}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain := query("a.example.", dns.TypeA)
	ka := withOpt(query("a.example.", dns.TypeA), false, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	writeFrame(t, c, plain)
	if r := readFrame(t, c); r.Id != plain.Id || len(r.Answer) != 1 {
		t.Fatal(r)
	}
	writeFrame(t, c, ka)
	r := readFrame(t, c)
	var timeout uint16
	for _, o := range r.IsEdns0().Option {
		if k, ok := o.(*dns.EDNS0_TCP_KEEPALIVE); ok {
			timeout = k.Timeout
		}
	}
	if timeout != 300 {
		t.Fatalf("keepalive timeout %d, want 300 (30 s)", timeout)
	}
	// Both on the fast path: the keepalive option is added on the wire.
	if fast.Load() != 2 || slow.Load() != 0 {
		t.Fatalf("fast %d slow %d", fast.Load(), slow.Load())
	}
}

// TestStreamPipelinedBurstMixed: a burst of fast-path and slow-path queries
// in one write is answered completely, each answer matching its query.
func TestStreamPipelinedBurstMixed(t *testing.T) {
	static := staticWire(pack(t, answerAMsg("w.example.")))
	h := &wireFake{
		HandlerFunc: answerA,
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if raw[13] != 'w' {
				return nil, false
			}
			return static(q, raw, dst)
		},
	}
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: h, MaxInFlight: 4}}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[uint16]string{}
	var buf []byte
	for i := range 300 {
		name := "w.example."
		if i%3 == 0 {
			name = "slow.example."
		}
		q := query(name, dns.TypeA)
		q.Id = uint16(i + 1)
		want[q.Id] = name
		b := pack(t, q)
		buf = append(append(buf, byte(len(b)>>8), byte(len(b))), b...)
	}
	go c.Write(buf)
	for range 300 {
		r := readFrame(t, c)
		name, ok := want[r.Id]
		if !ok || len(r.Answer) != 1 || r.Question[0].Name != name {
			t.Fatalf("unexpected answer %v", r)
		}
		delete(want, r.Id)
	}
}
