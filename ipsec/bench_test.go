package ipsec

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// dnsLike is a 40-byte query and the echo server answers with 100 bytes,
// roughly an A query and its answer.
var dnsLike = make([]byte, 40)

// udpResponder answers every datagram with 100 bytes.
func udpResponder(b *testing.B, pc net.PacketConn) {
	resp := make([]byte, 100)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(resp, from)
		}
	}()
}

// exchanger runs rounds of DNS-sized exchanges from clients concurrent
// connections.
type exchanger struct {
	conns []net.Conn
	buf   [][]byte
}

func newExchanger(b *testing.B, dial func() net.Conn, clients int) *exchanger {
	e := &exchanger{}
	for range clients {
		e.conns = append(e.conns, dial())
		e.buf = append(e.buf, make([]byte, 2048))
	}
	b.Cleanup(func() {
		for _, c := range e.conns {
			c.Close()
		}
	})
	return e
}

// round does per exchanges on every connection and returns the time per
// exchange.
func (e *exchanger) round(b *testing.B, per int) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range e.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(dnsLike); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Read(e.buf[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start) / time.Duration(per*len(e.conns))
}

// BenchmarkUDPRoundTrip sends DNS-sized UDP exchanges through two tunnels
// and two netstacks (AES-128-GCM, loopback), serially and from 16 clients,
// alternating with the same exchanges over the host's loopback UDP as the
// peer, and reports the best round of each and their ratio.
func BenchmarkUDPRoundTrip(b *testing.B) {
	client, server := tunnelPair(b, true)
	pc, err := server.ListenPacket(context.Background(), "udp", "10.200.0.53:53")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	udpResponder(b, pc)
	host, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	udpResponder(b, host)

	tunnelDial := func() net.Conn {
		c, err := client.DialContext(context.Background(), "udp", "10.200.0.53:53")
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	hostDial := func() net.Conn {
		c, err := net.Dial("udp", host.LocalAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	for _, clients := range []int{1, 16} {
		b.Run(map[int]string{1: "serial", 16: "16clients"}[clients], func(b *testing.B) {
			tun, lo := newExchanger(b, tunnelDial, clients), newExchanger(b, hostDial, clients)
			var bt, bl time.Duration
			for b.Loop() {
				// Alternate short rounds so load on the machine hits both.
				t, l := tun.round(b, 200/clients+1), lo.round(b, 200/clients+1)
				if bt == 0 || t < bt {
					bt = t
				}
				if bl == 0 || l < bl {
					bl = l
				}
			}
			b.ReportMetric(float64(time.Second)/float64(bt), "tunnel-rt/s")
			b.ReportMetric(float64(time.Second)/float64(bl), "loopback-rt/s")
			b.ReportMetric(float64(bt)/float64(bl), "x-loopback")
		})
	}
}

// BenchmarkTCPThroughput pushes one TCP stream through two tunnels and
// netstacks (AES-128-GCM over loopback UDP).
func BenchmarkTCPThroughput(b *testing.B) {
	client, server := tunnelPair(b, true)
	l, err := server.Listen(context.Background(), "tcp", "10.200.0.53:9")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- 0
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		done <- n
	}()
	c, err := client.DialContext(context.Background(), "tcp", "10.200.0.53:9")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if n := <-done; n != int64(b.N)*int64(len(chunk)) {
		b.Fatalf("received %d of %d bytes", n, b.N*len(chunk))
	}
}
