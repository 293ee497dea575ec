package netstack

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// An IPv6-unspecified UDP socket is dual-stack: it reaches IPv4 peers and
// hears their answers, even on a stack with only IPv4 addresses.
func TestDualStackUDP(t *testing.T) {
	a, err := New(Config{Addresses: []netip.Addr{a4}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Addresses: []netip.Addr{b4}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); a.Close(); b.Close() }()
	pump := func(from, to *Stack) {
		buf := make([]byte, 2000)
		for {
			n, err := from.Read(ctx, buf, 0)
			if err != nil {
				return
			}
			to.Write(buf[:n])
		}
	}
	go pump(a, b)
	go pump(b, a)
	srv, err := b.ListenUDP(netip.AddrPortFrom(netip.IPv4Unspecified(), 53))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pc, err := a.ListenUDP(netip.AddrPortFrom(netip.IPv6Unspecified(), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.WriteTo([]byte("q"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 53}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	srv.SetDeadline(time.Now().Add(5 * time.Second))
	_, from, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	srv.WriteTo([]byte("r"), from)
	pc.SetDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "r" {
		t.Fatalf("reply %q from %v: %v", buf[:n], from, err)
	}
	if ap := from.(*net.UDPAddr).AddrPort(); ap.Addr().Unmap() != b4 || ap.Port() != 53 {
		t.Fatalf("reply from %v", from)
	}
	t.Logf("reply from %v", from)
}
