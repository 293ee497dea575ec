package ipsec

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func udpEcho(t testing.TB, s *Tunnel, addr string) {
	t.Helper()
	pc, err := s.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

func tcpEcho(t testing.TB, s *Tunnel, addr string) {
	t.Helper()
	l, err := s.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

func TestTunnelUDPAndTCP(t *testing.T) {
	client, server := tunnelPair(t, true)
	udpEcho(t, server, "10.200.0.53:7")
	udpEcho(t, server, "[fd00:200::53]:7")
	tcpEcho(t, server, "10.200.0.53:7")
	tcpEcho(t, server, "[fd00:200::53]:7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ network, addr string }{
		{"udp", "10.200.0.53:7"}, {"udp6", "[fd00:200::53]:7"}, {"tcp", "10.200.0.53:7"}, {"tcp6", "[fd00:200::53]:7"},
	} {
		c, err := client.DialContext(ctx, tc.network, tc.addr)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.network, tc.addr, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		msg := bytes.Repeat([]byte("0123456789"), 500) // > 1 MTU for TCP
		if tc.network[:3] == "udp" {
			msg = msg[:1200]
		}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%s echo: %v", tc.network, err)
		}
		c.Close()
	}
	st := client.Stats()
	if !st.Up || st.PacketsOut == 0 || st.PacketsIn == 0 || st.In.AuthFailures != 0 {
		t.Fatalf("client stats %+v", st)
	}
}

func TestDialOutsideTrafficSelectors(t *testing.T) {
	client, _ := tunnelPair(t, true)
	for _, addr := range []string{"10.9.9.9:53", "[2001:db8::1]:53"} {
		_, err := client.DialContext(context.Background(), "udp", addr)
		if !errors.Is(err, ErrOutsideTS) {
			t.Fatalf("dial %s: %v, want ErrOutsideTS", addr, err)
		}
	}
	if _, err := client.DialContext(context.Background(), "tcp", "ns.example:53"); err == nil {
		t.Fatal("dialing a host name succeeded")
	}
	pc, err := client.ListenPacket(context.Background(), "udp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53}); !errors.Is(err, ErrOutsideTS) {
		t.Fatalf("WriteTo outside: %v", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ca, cb := udpPair(t)
	mc, ms := staticPair("aes128gcm16", 0x1000, testKey, "")
	client, err := New(context.Background(), Config{Conn: ca, Addresses: []netip.Addr{clientAddr},
		RemoteTS: []netip.Prefix{serverNet}, Manual: mc, Keepalive: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	server, err := New(context.Background(), Config{Conn: cb, Addresses: []netip.Addr{serverAddr},
		RemoteTS: []netip.Prefix{clientNet}, Manual: ms})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := server.Listen(context.Background(), "tcp", "10.200.0.53:7")
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := client.DialContext(context.Background(), "tcp", "10.200.0.53:7")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	server.RemoveInbound(0x1000, time.Hour) // a pending grace timer
	client.Close()
	server.Close()
	client.Close() // idempotent
	l.Close()
	c.Close()
	if _, err := client.DialContext(context.Background(), "udp", "10.200.0.53:7"); err == nil {
		t.Fatal("dial after Close succeeded")
	}
	if err := client.SendIKE(context.Background(), []byte("x")); err == nil {
		t.Fatal("SendIKE after Close succeeded")
	}
}

// network has upstream.Network's method set (ipsec may not import upstream).
type network interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

var _ network = (*Tunnel)(nil)

// One ListenPacket("udp", "") socket reaches servers of both families, as
// quic.Transport needs.
func TestListenPacketDualStack(t *testing.T) {
	client, server := tunnelPair(t, true)
	udpEcho(t, server, "10.200.0.53:7")
	udpEcho(t, server, "[fd00:200::53]:7")
	pc, err := client.ListenPacket(context.Background(), "udp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, dst := range []string{"10.200.0.53:7", "[fd00:200::53]:7"} {
		ua, _ := net.ResolveUDPAddr("udp", dst)
		if _, err := pc.WriteTo([]byte(dst), ua); err != nil {
			t.Fatal(err)
		}
		pc.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		got, want := from.(*net.UDPAddr).AddrPort(), ua.AddrPort()
		if string(buf[:n]) != dst || got.Addr().Unmap() != want.Addr().Unmap() || got.Port() != 7 {
			t.Fatalf("echo from %s: %q from %v, %v", dst, buf[:n], from, err)
		}
	}
}
