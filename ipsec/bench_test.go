package ipsec

import (
	"context"
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

func roundTrips(b *testing.B, dial func() net.Conn, clients int) {
	var wg sync.WaitGroup
	per := b.N/clients + 1
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial()
			defer c.Close()
			buf := make([]byte, 2048)
			for range per {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(dnsLike); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Read(buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*clients)/time.Since(start).Seconds(), "rt/s")
}

// BenchmarkUDPRoundTrip sends DNS-sized UDP exchanges through two tunnels
// and two netstacks (AES-128-GCM, loopback), serially and from 16 clients,
// next to the same exchange over the host's loopback UDP as the peer.
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
		name := map[int]string{1: "serial", 16: "16clients"}[clients]
		b.Run("tunnel/"+name, func(b *testing.B) { roundTrips(b, tunnelDial, clients) })
		b.Run("loopback/"+name, func(b *testing.B) { roundTrips(b, hostDial, clients) })
	}
}
