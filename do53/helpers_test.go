package do53

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/laminadns/lamina/resolver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testIP = net.IPv4(192, 0, 2, 1).To4()

// answerA is a Handler answering every A query with 192.0.2.1.
func answerA(_ context.Context, q *resolver.Query) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.Answer = append(m.Answer, &dns.A{
		Hdr: dns.RR_Header{Name: q.Msg.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   testIP,
	})
	return m, nil
}

// wireFake adds a ServeWire fast path to a Handler.
type wireFake struct {
	resolver.HandlerFunc
	onWire func(q *resolver.Query, raw, dst []byte) ([]byte, bool)
}

func (w *wireFake) ServeWire(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
	return w.onWire(q, raw, dst)
}

// staticWire answers every query with resp (its ID patched) from the wire.
func staticWire(resp []byte) func(*resolver.Query, []byte, []byte) ([]byte, bool) {
	return func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
		dst = append(dst, resp...)
		copy(dst[len(dst)-len(resp):], raw[:2])
		return dst, true
	}
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}

// startUDP serves h on a loopback UDP socket until the test ends.
func startUDP(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pcs, err := ListenUDP(context.Background(), "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pcs...) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, pcs[0].LocalAddr().String()
}

// startStream serves cfg on a loopback TCP listener (wrapped by wrap, if not
// nil) until the test ends.
func startStream(t testing.TB, cfg StreamConfig, wrap func(net.Listener) net.Listener) (*StreamServer, string) {
	t.Helper()
	s, err := NewStreamServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if wrap != nil {
		l = wrap(l)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, addr
}

func exchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange: %v", network, err)
	}
	return r
}

// writeFrame writes m with its 2-byte length prefix.
func writeFrame(t testing.TB, c net.Conn, m *dns.Msg) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads one framed message, failing the test after 5 s.
func readFrame(t testing.TB, c net.Conn) *dns.Msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	dc := &dns.Conn{Conn: c}
	m, err := dc.ReadMsg()
	if err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	return m
}

// waitClosed asserts that the server closes c within a generous bound.
func waitClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if isTimeout(err) {
			t.Fatal("connection still open after 10 s")
		}
		return
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
