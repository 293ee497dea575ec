package netstack

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

var (
	a4, b4 = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	a6, b6 = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

// wire connects two stacks directly and records the largest packet seen.
func wire(t *testing.T, mtu int) (a, b *Stack, largest *atomic.Int64) {
	t.Helper()
	var err error
	if a, err = New(Config{Addresses: []netip.Addr{a4, a6}, MTU: mtu}); err != nil {
		t.Fatal(err)
	}
	if b, err = New(Config{Addresses: []netip.Addr{b4, b6}, MTU: mtu}); err != nil {
		t.Fatal(err)
	}
	largest = new(atomic.Int64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	pump := func(from, to *Stack) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 100+from.MTU())
		for {
			n, err := from.Read(ctx, buf, 100)
			if err != nil {
				return
			}
			if int64(n) > largest.Load() {
				largest.Store(int64(n))
			}
			to.Write(buf[100 : 100+n])
		}
	}
	go pump(a, b)
	go pump(b, a)
	t.Cleanup(func() { cancel(); <-done; <-done; a.Close(); b.Close() })
	return a, b, largest
}

func TestTCPAndUDPOverWiredStacks(t *testing.T) {
	a, b, largest := wire(t, 1400)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, dst := range []netip.Addr{b4, b6} {
		l, err := b.ListenTCP(netip.AddrPortFrom(dst, 853))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		c, err := a.DialTCP(ctx, netip.AddrPortFrom(dst, 853))
		if err != nil {
			t.Fatal(err)
		}
		msg := bytes.Repeat([]byte("lamina"), 20000) // many full segments
		go c.Write(msg)
		got := make([]byte, len(msg))
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("TCP echo to %v: %v", dst, err)
		}
		c.Close()
		l.Close()

		any := netip.IPv4Unspecified()
		if dst.Is6() {
			any = netip.IPv6Unspecified()
		}
		pc, err := b.ListenUDP(netip.AddrPortFrom(any, 53))
		if err != nil {
			t.Fatal(err)
		}
		u, err := a.DialUDP(netip.AddrPortFrom(dst, 53))
		if err != nil {
			t.Fatal(err)
		}
		u.Write([]byte("query"))
		pc.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "query" || from.(*net.UDPAddr).AddrPort().Addr().Is4() != dst.Is4() {
			t.Fatalf("UDP to %v: %q from %v: %v", dst, buf[:n], from, err)
		}
		u.Close()
		pc.Close()
	}
	// TCP's MSS follows the link MTU: no packet ever exceeded it.
	if l := largest.Load(); l > 1400 || l < 1300 {
		t.Fatalf("largest packet %d bytes with MTU 1400", l)
	}
}

func TestConfigChecks(t *testing.T) {
	if _, err := New(Config{MTU: 500}); err == nil {
		t.Fatal("MTU 500 accepted")
	}
	if _, err := New(Config{MTU: 1200, Addresses: []netip.Addr{a6}}); err == nil {
		t.Fatal("IPv6 with MTU 1200 accepted")
	}
	s, err := New(Config{MTU: 1200, Addresses: []netip.Addr{a4}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddAddress(a4); err != nil {
		t.Fatalf("re-adding an address: %v", err)
	}
	if err := s.Write([]byte{0x10, 0}); err == nil {
		t.Fatal("non-IP packet accepted")
	}
}

// A full queue drops and counts instead of blocking the stack.
func TestQueueOverflowCounted(t *testing.T) {
	s, err := New(Config{Addresses: []netip.Addr{a4}, QueueLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.DialUDP(netip.AddrPortFrom(b4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for range 10 {
		u.Write([]byte("x"))
	}
	if d := s.Drops(); d != 6 {
		t.Fatalf("drops = %d, want 6", d)
	}
	buf := make([]byte, 100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for range 4 {
		if n, err := s.Read(ctx, buf, 0); err != nil || n != 29 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	// A buffer too small for the packet drops it too.
	u.Write([]byte("x"))
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := s.Read(short, buf[:10], 0); err == nil || s.Drops() != 7 {
		t.Fatalf("short buffer: %v, drops %d", err, s.Drops())
	}
}
