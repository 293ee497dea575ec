package do53

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

func TestUDPServe(t *testing.T) {
	var slow, fast atomic.Int32
	wire := pack(t, withOpt(answerAMsg("fast.example."), false))
	h := &wireFake{
		HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
			slow.Add(1)
			if q.Transport != resolver.UDP || !q.Client.Addr().Is4() || q.Listener != "test" || q.MaxSize != 1232 {
				return nil, fmt.Errorf("bad query facts: %+v", q)
			}
			if _, ok := ctx.Deadline(); !ok {
				return nil, errors.New("no deadline")
			}
			return answerA(ctx, q)
		},
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if q.Msg != nil || q.MaxSize != 1232 {
				return nil, false
			}
			if q.Transport == resolver.UDP && string(raw[13:17]) == "fast" {
				fast.Add(1)
				return staticWire(wire)(q, raw, dst)
			}
			return nil, false
		},
	}
	reg := prometheus.NewRegistry()
	_, addr := startUDP(t, Config{Handler: h, Listener: "test", Metrics: NewMetrics(reg)})
	for _, name := range []string{"fast.example.", "slow.example."} {
		m := withOpt(query(name, dns.TypeA), false)
		r := exchange(t, "udp", addr, m)
		if r.Id != m.Id || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("%s: %v", name, r)
		}
	}
	if slow.Load() != 1 || fast.Load() != 1 {
		t.Fatalf("slow %d fast %d", slow.Load(), fast.Load())
	}
	if n := value(NewMetrics(reg).queries.WithLabelValues("udp", "A", "NOERROR")); n != 2 {
		t.Fatalf("lamina_queries_total{udp,A,NOERROR} = %v", n)
	}
}

func answerAMsg(name string) *dns.Msg {
	m, _ := answerA(context.TODO(), &resolver.Query{Msg: query(name, dns.TypeA)})
	m.Response = true
	return m
}

// TestUDPBadInput sends hostile packets and checks each gets the right
// treatment and that the server keeps answering.
func TestUDPBadInput(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	_, addr := startUDP(t, Config{Handler: resolver.HandlerFunc(answerA), Metrics: m})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	garbage := []byte("\x00\x01garbage that is not DNS at all, and then some more bytes")
	tests := []struct {
		name  string
		raw   []byte
		rcode int // -1: no answer
	}{
		{"truncated header", truncatedHeader, -1},
		{"QR set", qrSet, -1},
		{"empty", []byte{}, -1},
		{"garbage", garbage, dns.RcodeFormatError},
		{"compression loop", compressionLoop, dns.RcodeFormatError},
		{"oversized name", oversizedName, dns.RcodeFormatError},
		{"missing question", missingQuestion, dns.RcodeFormatError},
	}
	for _, tt := range tests {
		if _, err := c.Write(tt.raw); err != nil {
			t.Fatal(err)
		}
		if tt.rcode >= 0 {
			buf := make([]byte, 512)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil || r.Rcode != tt.rcode || r.Id != uint16(tt.raw[0])<<8|uint16(tt.raw[1]) {
				t.Fatalf("%s: %v %v", tt.name, r, err)
			}
		}
		// The server still answers after each one, and never answers the
		// unanswerable: the next thing read is this reply.
		q := query("still.example.", dns.TypeA)
		if _, err := c.Write(pack(t, q)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		r := new(dns.Msg)
		if err != nil || r.Unpack(buf[:n]) != nil || r.Id != q.Id || len(r.Answer) != 1 {
			t.Fatalf("after %s: %v %v", tt.name, r, err)
		}
	}
	if n := value(m.dropped.WithLabelValues("udp", "malformed")); n != 3 {
		t.Fatalf("malformed drops = %v, want 3", n)
	}
	if n := value(m.queries.WithLabelValues("udp", "other", "FORMERR")); n != 4 {
		t.Fatalf("FORMERR answers = %v, want 4", n)
	}
}

// TestUDPTruncationThenTCP: a large answer comes back TC over UDP and whole
// over TCP, as a client retrying would see it.
func TestUDPTruncationThenTCP(t *testing.T) {
	h := resolver.HandlerFunc(func(_ context.Context, q *resolver.Query) (*dns.Msg, error) {
		m := new(dns.Msg).SetReply(q.Msg)
		for i := range 60 {
			m.Answer = append(m.Answer, mustRR(fmt.Sprintf("big.example. 60 IN A 192.0.2.%d", i)))
		}
		return m, nil
	})
	_, uaddr := startUDP(t, Config{Handler: h})
	r := exchange(t, "udp", uaddr, query("big.example.", dns.TypeA))
	if !r.Truncated || len(r.Answer) != 0 {
		t.Fatalf("UDP: TC %v with %d answers", r.Truncated, len(r.Answer))
	}
	_, taddr := startStream(t, StreamConfig{Config: Config{Handler: h}}, nil)
	r = exchange(t, "tcp", taddr, query("big.example.", dns.TypeA))
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("TCP: TC %v with %d answers", r.Truncated, len(r.Answer))
	}
}

func TestUDPPanicIsServFail(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	h := &wireFake{
		HandlerFunc: func(context.Context, *resolver.Query) (*dns.Msg, error) { panic("handler bug") },
		onWire:      func(*resolver.Query, []byte, []byte) ([]byte, bool) { panic("wire bug") },
	}
	_, addr := startUDP(t, Config{Handler: h, Metrics: m})
	for range 2 {
		if r := exchange(t, "udp", addr, query("a.example.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
			t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
		}
	}
	if n := value(m.panics); n != 4 {
		t.Fatalf("panics = %v, want 4", n)
	}
}

func TestUDPDropAndOverload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		if q.Msg.Question[0].Name == "drop.example." {
			return nil, resolver.ErrDrop
		}
		entered <- struct{}{}
		<-release
		return answerA(ctx, q)
	})
	srv, addr := startUDP(t, Config{Handler: h, Metrics: m, MaxInFlight: 1})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(pack(t, query("block.example.", dns.TypeA)))
	<-entered
	// The slot is taken: these are dropped as overload.
	for range 3 {
		c.Write(pack(t, query("drop.example.", dns.TypeA)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for value(m.dropped.WithLabelValues("udp", "overload")) != 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	// Now a policy drop, once the slot is free again.
	for len(srv.sem) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.Write(pack(t, query("drop.example.", dns.TypeA)))
	for value(m.dropped.WithLabelValues("udp", "policy")) != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if o, p := value(m.dropped.WithLabelValues("udp", "overload")), value(m.dropped.WithLabelValues("udp", "policy")); o != 3 || p != 1 {
		t.Fatalf("overload %v policy %v", o, p)
	}
}

func TestUDPShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		close(entered)
		<-release
		return answerA(ctx, q)
	})
	s, err := NewServer(Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	pcs, err := ListenUDP(context.Background(), "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(pcs...) }()
	c, err := net.Dial("udp", pcs[0].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := query("drain.example.", dns.TypeA)
	c.Write(pack(t, q))
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v before the in-flight query was answered", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	r := new(dns.Msg)
	if err != nil || r.Unpack(buf[:n]) != nil || r.Id != q.Id {
		t.Fatalf("in-flight answer lost: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
	s.Close() // idempotent
}

func TestUDPShutdownDeadline(t *testing.T) {
	entered := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		close(entered)
		<-ctx.Done() // only Close's cancellation ends this
		return nil, ctx.Err()
	})
	s, addr := startUDP(t, Config{Handler: h, QueryTimeout: time.Hour})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(pack(t, query("stuck.example.", dns.TypeA)))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
}

func TestListenUDPReusePort(t *testing.T) {
	pcs, err := ListenUDP(context.Background(), "127.0.0.1:0", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, pc := range pcs {
			pc.Close()
		}
	}()
	if len(pcs) != 3 {
		t.Fatalf("%d sockets", len(pcs))
	}
	for _, pc := range pcs[1:] {
		if pc.LocalAddr().String() != pcs[0].LocalAddr().String() {
			t.Fatalf("%v != %v", pc.LocalAddr(), pcs[0].LocalAddr())
		}
	}
}

// TestListenUDPPortInUse: a port another SO_REUSEPORT group holds (a second
// Lamina on the same port) is an error, not a silent share of its queries.
func TestListenUDPPortInUse(t *testing.T) {
	first, err := ListenUDP(context.Background(), "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, pc := range first {
			pc.Close()
		}
	}()
	second, err := ListenUDP(context.Background(), first[0].LocalAddr().String(), 2)
	if err == nil {
		for _, pc := range second {
			pc.Close()
		}
		t.Fatal("joined a port already in use")
	}
}
