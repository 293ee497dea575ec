package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// streamServer accepts connections on l and runs handle for each, the
// connection number (from 0) given; Cleanup closes everything and waits.
func streamServer(t testing.TB, l net.Listener, handle func(n int, c net.Conn)) netip.AddrPort {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { defer c.Close(); handle(n, c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return netip.MustParseAddrPort(l.Addr().String())
}

func listenTCP(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func readFrame(c net.Conn) (*dns.Msg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(buf)
}

func writeFrame(c net.Conn, m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	return err
}

func answer(req *dns.Msg, ip string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Answer = append(m.Answer, testA(req.Question[0].Name, ip))
	return m
}

// TestTCPPipelinedOutOfOrder: two queries on one connection, answered in
// reverse order after an answer nobody asked for and one with a wrong
// question; both exchanges get their own answer.
func TestTCPPipelinedOutOfOrder(t *testing.T) {
	var conns atomic.Int32
	addr := streamServer(t, listenTCP(t), func(n int, c net.Conn) {
		conns.Add(1)
		a, err := readFrame(c)
		if err != nil {
			return
		}
		b, err := readFrame(c)
		if err != nil {
			return
		}
		stray := answer(a, "192.0.2.99")
		stray.Id = a.Id ^ b.Id ^ 1
		if stray.Id == a.Id || stray.Id == b.Id {
			stray.Id++
		}
		wrongQ := answer(a, "192.0.2.98")
		wrongQ.Question[0].Qtype = dns.TypeAAAA
		ip := func(m *dns.Msg) string {
			return map[string]string{"a.test.": "192.0.2.1", "b.test.": "192.0.2.2"}[m.Question[0].Name]
		}
		for _, m := range []*dns.Msg{stray, wrongQ, answer(b, ip(b)), answer(a, ip(a))} {
			writeFrame(c, m)
		}
		io.Copy(io.Discard, c)
	})
	reg := prometheus.NewRegistry()
	u := NewTCP(addr, Options{Metrics: NewMetrics(reg)})
	defer u.Close()
	var wg sync.WaitGroup
	for i, name := range []string{"a.test.", "b.test."} {
		wg.Go(func() {
			resp, err := u.Exchange(context.Background(), query(name, dns.TypeA))
			if err != nil {
				t.Error(err)
				return
			}
			if got, want := answerIP(resp), []string{"192.0.2.1", "192.0.2.2"}[i]; got != want {
				t.Errorf("%s: got %s, want %s", name, got, want)
			}
		})
	}
	wg.Wait()
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	for reason, want := range map[string]float64{"unknown_id": 1, "question": 1} {
		got := counterValue(t, reg, "lamina_upstream_dropped_responses_total",
			map[string]string{"upstream": u.String(), "reason": reason})
		if got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// TestTCPStaleRetry: the server answers once, then closes the connection
// when the next query arrives (as a server timing out an idle connection
// does). That query is retried on a fresh connection without an error.
func TestTCPStaleRetry(t *testing.T) {
	var conns atomic.Int32
	addr := streamServer(t, listenTCP(t), func(n int, c net.Conn) {
		conns.Add(1)
		for i := 0; ; i++ {
			req, err := readFrame(c)
			if err != nil || i == 1 {
				return // close without answering the second query
			}
			writeFrame(c, answer(req, "192.0.2.1"))
		}
	})
	u := NewTCP(addr, Options{})
	defer u.Close()
	for i := range 3 {
		if _, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	// 0 and 1 on the first connection (1 retried), 1 and 2 on the second
	// (2 retried), 2 on the third.
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestTCPFreshFailureNotRetried: a connection that fails before any answer
// on its first query is an error, not a loop.
func TestTCPFreshFailureNotRetried(t *testing.T) {
	var conns atomic.Int32
	addr := streamServer(t, listenTCP(t), func(n int, c net.Conn) {
		conns.Add(1)
		readFrame(c)
	})
	u := NewTCP(addr, Options{})
	defer u.Close()
	_, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA))
	if err == nil || !errors.Is(err, errStale) {
		t.Fatalf("err = %v, want a closed-connection error", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestTCPRefused: nothing listens; the error comes at once.
func TestTCPRefused(t *testing.T) {
	l := listenTCP(t)
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	u := NewTCP(addr, Options{})
	defer u.Close()
	if _, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err == nil || isTimeout(err) {
		t.Fatalf("err = %v, want connection refused", err)
	}
}
