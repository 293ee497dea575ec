package do53

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// The benchmarks compare Lamina's servers with miekg/dns's own server doing
// the same work in the same run; read the ratios, not the absolute numbers
// (load generator and server share the cores).
//
//	go test ./do53 -run '^$' -bench . -benchmem

func benchHandler(b *testing.B, wire bool) resolver.Handler {
	if !wire {
		return resolver.HandlerFunc(answerA)
	}
	resp := pack(b, answerAMsg("bench.example."))
	return &wireFake{HandlerFunc: answerA, onWire: staticWire(resp)}
}

// miekgServer serves the same answer with miekg/dns's Server.
func miekgServer(b *testing.B, network string) string {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m, _ := answerA(context.Background(), &resolver.Query{Msg: r})
		w.WriteMsg(m)
	})
	srv := &dns.Server{Handler: h, MaxTCPQueries: -1}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var addr string
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv.PacketConn, addr = pc, pc.LocalAddr().String()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv.Listener, addr = l, l.Addr().String()
	}
	go srv.ActivateAndServe()
	<-started
	b.Cleanup(func() { srv.Shutdown() })
	return addr
}

// cpuTime is the process's user+system CPU time. Reported per operation it
// is steadier than wall time on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(cpuTime()-since)/float64(b.N), "cpu-ns/op")
}

// udpPingPong has each parallel client send a query and wait for its answer.
func udpPingPong(b *testing.B, addr string) {
	q := pack(b, query("bench.example.", dns.TypeA))
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
		for pb.Next() {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(q); err != nil {
				b.Error(err)
				return
			}
			if n, err := c.Read(buf); err != nil || n < headerLen {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkUDP(b *testing.B) {
	b.Run("lamina-wire", func(b *testing.B) {
		_, addr := startUDP(b, Config{Handler: benchHandler(b, true)})
		udpPingPong(b, addr)
	})
	b.Run("lamina-msg", func(b *testing.B) {
		_, addr := startUDP(b, Config{Handler: benchHandler(b, false)})
		udpPingPong(b, addr)
	})
	b.Run("miekg-msg", func(b *testing.B) {
		udpPingPong(b, miekgServer(b, "udp"))
	})
}

// tcpPipelined sends b.N queries on one connection while reading answers.
func tcpPipelined(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	q := pack(b, query("bench.example.", dns.TypeA))
	frame := append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	go func() {
		// Batches of 16 queries per write; TCP flow control bounds the rest.
		batch := make([]byte, 0, 16*len(frame))
		for i := 0; i < b.N; {
			batch = batch[:0]
			for j := 0; j < 16 && i < b.N; j, i = j+1, i+1 {
				batch = append(batch, frame...)
			}
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	need, have := 0, 0
	for got := 0; got < b.N; {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf[have:])
		if err != nil {
			b.Fatal(err)
		}
		have += n
		off := 0
		for {
			if have-off < 2 {
				break
			}
			need = int(binary.BigEndian.Uint16(buf[off:]))
			if have-off < 2+need {
				break
			}
			off += 2 + need
			got++
		}
		have = copy(buf, buf[off:have])
	}
}

func BenchmarkTCPPipelined(b *testing.B) {
	b.Run("lamina-wire", func(b *testing.B) {
		_, addr := startStream(b, StreamConfig{Config: Config{Handler: benchHandler(b, true)}}, nil)
		tcpPipelined(b, addr)
	})
	b.Run("lamina-msg", func(b *testing.B) {
		_, addr := startStream(b, StreamConfig{Config: Config{Handler: benchHandler(b, false)}}, nil)
		tcpPipelined(b, addr)
	})
	b.Run("miekg-msg", func(b *testing.B) {
		tcpPipelined(b, miekgServer(b, "tcp"))
	})
}

func BenchmarkReply(b *testing.B) {
	req := withOpt(query("bench.example.", dns.TypeA), false)
	q := &resolver.Query{Msg: req, Transport: resolver.UDP, MaxSize: 1232}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := answerA(context.Background(), q)
		if _, ok := Reply(q, resp, nil, buf); !ok {
			b.Fatal("dropped")
		}
	}
}

func BenchmarkScanQuery(b *testing.B) {
	raw := pack(b, withOpt(query("www.bench.example.", dns.TypeAAAA), true))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := scanQuery(raw); !ok {
			b.Fatal("not scanned")
		}
	}
}

// BenchmarkIdleConnMemory reports the memory (heap and stacks) held per idle
// connection after one query, over TCP and over TLS 1.3. Client ends live in
// the same process and are included: read it as an upper bound.
func BenchmarkIdleConnMemory(b *testing.B) {
	b.Run("tcp", func(b *testing.B) { idleConnMemory(b, false) })
	b.Run("tls", func(b *testing.B) { idleConnMemory(b, true) })
}

func idleConnMemory(b *testing.B, useTLS bool) {
	const n = 2000
	cfg := StreamConfig{Config: Config{Handler: benchHandler(b, false)}, MaxConns: 2 * n, IdleTimeout: time.Minute}
	var wrap func(net.Listener) net.Listener
	var clientTLS *tls.Config
	if useTLS {
		cert, pool := testCert(b)
		cfg.Transport = resolver.TLS
		srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
		wrap = func(l net.Listener) net.Listener { return tls.NewListener(l, srvTLS) }
		clientTLS = &tls.Config{RootCAs: pool, ServerName: "dns.example"}
	}
	s, addr := startStream(b, cfg, wrap)
	q := pack(b, query("bench.example.", dns.TypeA))
	frame := append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]net.Conn, 0, n)
		buf := make([]byte, 512)
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if clientTLS != nil {
				c = tls.Client(c, clientTLS)
			}
			c.Write(frame)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
		b.ReportMetric(float64(used)/n, "B/conn")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-B/conn")
		for _, c := range conns {
			c.Close()
		}
		for busy := true; busy; {
			s.mu.Lock()
			busy = len(s.conns) > 0
			s.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}
}
