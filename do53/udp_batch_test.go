package do53

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// TestUDPBatchBurst holds the reader on the first query while several
// clients each send a burst, so that the rest queue on the socket and are
// read in batches; every client must get exactly its own answers, fast-path
// and slow-path ones alike.
func TestUDPBatchBurst(t *testing.T) {
	const clients, perClient = 6, 12
	gate := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	slots := map[*byte]bool{} // answer buffers ServeWire was given
	h := &wireFake{
		HandlerFunc: answerA,
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			once.Do(func() {
				select {
				case <-gate:
				case <-time.After(5 * time.Second):
				}
			})
			req := new(dns.Msg)
			if req.Unpack(raw) != nil || !strings.Contains(req.Question[0].Name, ".fast.") {
				return nil, false
			}
			mu.Lock()
			slots[unsafe.SliceData(dst[:1])] = true
			mu.Unlock()
			resp, _ := answerA(context.Background(), &resolver.Query{Msg: req})
			out, err := resp.PackBuffer(dst)
			return out, err == nil
		},
	}
	s, err := NewServer(Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	pcs, err := ListenUDP(context.Background(), "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pcs...) }()
	defer func() {
		s.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}()
	addr := pcs[0].LocalAddr().String()

	conns := make([]net.Conn, clients)
	want := make([]map[uint16]string, clients) // per client: ID -> name
	for i := range conns {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i], want[i] = c, map[uint16]string{}
	}
	for j := range perClient {
		for i, c := range conns {
			path := "fast"
			if j%4 == 3 {
				path = "slow"
			}
			q := query(fmt.Sprintf("c%d-q%d.%s.example.", i, j, path), dns.TypeA)
			q.Id = uint16(i<<8 | j)
			want[i][q.Id] = q.Question[0].Name
			if _, err := c.Write(pack(t, q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(gate)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 512)
			for range perClient {
				n, err := c.Read(buf)
				if err != nil {
					errs <- fmt.Errorf("client %d: %d answers missing: %v", i, len(want[i]), err)
					return
				}
				r := new(dns.Msg)
				if err := r.Unpack(buf[:n]); err != nil {
					errs <- fmt.Errorf("client %d: %v", i, err)
					return
				}
				name, ok := want[i][r.Id]
				if !ok || len(r.Answer) != 1 || r.Answer[0].Header().Name != name {
					errs <- fmt.Errorf("client %d got someone else's or a wrong answer: %v", i, r)
					return
				}
				delete(want[i], r.Id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(slots) < 2 {
		t.Errorf("fast-path answers were built in %d buffer slot(s); want a batch of several", len(slots))
	}
}

// TestUDPBatchOversizedQuery: a datagram longer than a batch slot is dropped
// as malformed (the kernel cut it short), not answered from its first part.
func TestUDPBatchOversizedQuery(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	_, addr := startUDP(t, Config{Handler: resolver.HandlerFunc(answerA), Metrics: m})
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, size := range []int{maxBatchQuery + 1, 3 * maxBatchQuery} {
		big := withOpt(query("big.example.", dns.TypeA), false)
		big.IsEdns0().Option = append(big.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, size)})
		small := query("small.example.", dns.TypeA)
		c.Write(pack(t, big))
		c.Write(pack(t, small))
		buf := make([]byte, 512)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		r := new(dns.Msg)
		if err != nil || r.Unpack(buf[:n]) != nil || r.Id != small.Id {
			t.Fatalf("%d-byte query: want only the small query's answer, got %v %v", size, r, err)
		}
	}
	if n := value(m.dropped.WithLabelValues("udp", "malformed")); n != 2 {
		t.Fatalf("malformed drops = %v, want 2", n)
	}
}

// BenchmarkUDPBurst has each parallel client keep a window of queries in
// flight (send 32, read 32), the load under which the reader batches; the
// ping-pong BenchmarkUDP sees batches of one.
func BenchmarkUDPBurst(b *testing.B) {
	_, addr := startUDP(b, Config{Handler: benchHandler(b, true)})
	q := pack(b, query("bench.example.", dns.TypeA))
	const window = 32
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		for more := true; more; {
			sent := 0
			for ; sent < window && pb.Next(); sent++ {
				if _, err := c.Write(q); err != nil {
					b.Error(err)
					return
				}
			}
			more = sent == window
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			for range sent {
				if _, err := c.Read(buf); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}
