package do53

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// bigAnswer answers with about 50 KiB of TXT records.
func bigAnswer(_ context.Context, q *resolver.Query) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	s := strings.Repeat("x", 255)
	for range 190 {
		m.Answer = append(m.Answer, &dns.TXT{
			Hdr: dns.RR_Header{Name: q.Msg.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{s},
		})
	}
	return m, nil
}

// A client that pipelines queries for large answers and never reads is
// disconnected once its unread answers pass MaxQueued, and counted; other
// clients are still served.
func TestStreamSlowReaderClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	const maxQueued = 256 << 10
	s, addr := startStream(t, StreamConfig{Config: Config{Handler: resolver.HandlerFunc(bigAnswer), Metrics: m},
		MaxQueued: maxQueued}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	// 400 answers of 50 KiB are 20 MB: far more than the kernel's socket
	// buffers and MaxQueued together.
	var burst bytes.Buffer
	for range 400 {
		b, _ := query("big.example.", dns.TypeTXT).Pack()
		burst.Write([]byte{byte(len(b) >> 8), byte(len(b))})
		burst.Write(b)
	}
	if _, err := c.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	slow := m.dropped.WithLabelValues("tcp", "slow_reader")
	for deadline := time.Now().Add(10 * time.Second); value(slow) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if v := value(slow); v != 1 {
		t.Fatalf("slow_reader drops = %v, want 1", v)
	}
	if q := maxConnQueued(s); q > maxQueued {
		t.Fatalf("%d bytes queued on a connection, want <= %d", q, maxQueued)
	}
	// Another client is served while the slow one is being torn down.
	if r := exchange(t, "tcp", addr, query("other.example.", dns.TypeTXT)); len(r.Answer) == 0 {
		t.Fatalf("other client: %v", r)
	}
	// The client's tiny receive window makes draining the answers already
	// sent a matter of TCP persist probes, which can take seconds: ask the
	// server instead whether it has let the connection go.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after 10 s", n)
		}
	}
}

func maxConnQueued(s *StreamServer) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for c := range s.conns {
		n = max(n, c.queued.Load())
	}
	return n
}

// Slow queries from many connections never run more than MaxQueries at once;
// readers wait for slots and every query is answered in the end. The fast
// path is not held up by the full slots.
func TestStreamMaxQueriesShared(t *testing.T) {
	const maxQueries, conns, perConn = 5, 4, 4
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := &wireFake{
		HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return answerA(ctx, q)
		},
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if !bytes.Contains(raw, []byte("\x04fast")) {
				return dst, false
			}
			return staticWire(raw)(q, raw, dst)
		},
	}
	s, addr := startStream(t, StreamConfig{Config: Config{Handler: h, MaxInFlight: perConn}, MaxQueries: maxQueries}, nil)
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
		for range perConn {
			writeFrame(t, c, query("slow.example.", dns.TypeA))
		}
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() < maxQueries && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	// Give readers the chance to exceed the bound, were it not enforced.
	for range 50 {
		if busyInFlight(s) > maxQueries {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if n := busyInFlight(s); n != maxQueries {
		t.Errorf("%d queries in flight, want %d", n, maxQueries)
	}
	fc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	writeFrame(t, fc, query("fast.example.", dns.TypeA))
	readFrame(t, fc) // answered inline while all slots are taken
	close(release)
	for _, c := range cs {
		for range perConn {
			readFrame(t, c)
		}
	}
	if p := peak.Load(); p != maxQueries {
		t.Fatalf("peak concurrency %d, want %d", p, maxQueries)
	}
}
