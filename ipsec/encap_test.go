package ipsec

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
)

// rawPeer starts one tunnel whose gateway end is a bare socket the test
// drives byte by byte.
func rawPeer(t *testing.T, cfg Config) (*Tunnel, net.Conn) {
	t.Helper()
	a, b := udpPair(t)
	cfg.Conn = a
	if cfg.Addresses == nil {
		cfg.Addresses = []netip.Addr{clientAddr}
		cfg.RemoteTS = []netip.Prefix{serverNet}
	}
	tun, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close(); b.Close() })
	return tun, b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

type ikeRecorder chan []byte

func (r ikeRecorder) HandleIKE(msg []byte) { r <- msg }

func TestDemultiplexing(t *testing.T) {
	tun, peer := rawPeer(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ike := []byte("IKE_SA_INIT bytes")
	peer.Write(append([]byte{0, 0, 0, 0}, ike...))
	if got, err := tun.ReadIKE(ctx); err != nil || !bytes.Equal(got, ike) {
		t.Fatalf("ReadIKE = %q, %v", got, err)
	}
	peer.Write([]byte{0xFF})                         // NAT keepalive
	peer.Write([]byte{0, 0, 0x10, 0, 0, 0, 0, 1, 9}) // ESP for an unknown SPI
	peer.Write([]byte{0, 0, 1})                      // too short for anything
	waitFor(t, "counters", func() bool {
		s := tun.Stats()
		return s.KeepalivesReceived == 1 && s.UnknownSPI == 2
	})

	if err := tun.SendIKE(ctx, ike); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], append([]byte{0, 0, 0, 0}, ike...)) {
		t.Fatalf("gateway got %x, %v", buf[:n], err)
	}
	if s := tun.Stats(); s.IKESent != 1 || s.IKEReceived != 1 {
		t.Fatalf("stats %+v", s)
	}

	// With a handler, IKE goes there instead.
	rec := make(ikeRecorder, 1)
	tun2, peer2 := rawPeer(t, Config{IKE: rec})
	peer2.Write(append([]byte{0, 0, 0, 0}, ike...))
	select {
	case got := <-rec:
		if !bytes.Equal(got, ike) {
			t.Fatalf("HandleIKE got %q", got)
		}
	case <-ctx.Done():
		t.Fatal("no IKE message delivered")
	}
	_ = tun2
}

func TestNATKeepalive(t *testing.T) {
	tun, peer := rawPeer(t, Config{Keepalive: 20 * time.Millisecond})
	buf := make([]byte, 10)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := peer.Read(buf)
	if err != nil || n != 1 || buf[0] != 0xFF {
		t.Fatalf("expected a keepalive, got %x %v", buf[:n], err)
	}
	waitFor(t, "keepalive counted", func() bool { return tun.Stats().KeepalivesSent > 0 })
	_, peer2 := rawPeer(t, Config{Keepalive: -1})
	peer2.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := peer2.Read(buf); err == nil {
		t.Fatal("keepalive sent although disabled")
	}
}

// A dial issued before any SA exists waits for the SA instead of sending a
// SYN into the void, and completes promptly once it is installed.
func TestDialWaitsForSA(t *testing.T) {
	client, server := tunnelPair(t, false)
	tcpEcho(t, server, "10.200.0.53:7")
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := client.DialContext(short, "tcp", "10.200.0.53:7"); !errors.Is(err, ErrNoSA) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial without SA: %v", err)
	}
	if s := client.Stats(); s.PacketsOut != 0 || s.NoSADrops != 0 {
		t.Fatalf("something was sent without an SA: %+v", s)
	}

	ctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	dialed := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := client.DialContext(ctx, "tcp", "10.200.0.53:7")
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	time.Sleep(20 * time.Millisecond)
	mc, ms := staticPair("aes256gcm16", 0x3000, "0001020304050607080910111213141516171819202122232425262728293031"+"32333435", "")
	if err := server.InstallChildSA(mustESP(t, ms.In, esp.Inbound), mustESP(t, ms.Out, esp.Outbound)); err != nil {
		t.Fatal(err)
	}
	if err := client.InstallChildSA(mustESP(t, mc.In, esp.Inbound), mustESP(t, mc.Out, esp.Outbound)); err != nil {
		t.Fatal(err)
	}
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	// No SYN retransmission was needed (gVisor's first RTO is 1 s).
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Logf("dial took %v", d)
	}
	if s := client.Stats(); s.NoSADrops != 0 {
		t.Fatalf("packets dropped for lack of an SA: %+v", s)
	}
}

// After a switch the old inbound SA keeps accepting for its grace period;
// then its packets are unknown.
func TestOldInboundSAGrace(t *testing.T) {
	tun, peer := rawPeer(t, Config{})
	mk := func(spi uint32, d esp.Direction) esp.Config {
		return mustESP(t, StaticSA{SPI: spi, Suite: "aes128gcm16", Key: testKey}, d)
	}
	if err := tun.AddInbound(mk(0x4000, esp.Inbound)); err != nil {
		t.Fatal(err)
	}
	if err := tun.AddInbound(mk(0x4000, esp.Inbound)); err == nil {
		t.Fatal("duplicate inbound SPI accepted")
	}
	oldOut, _ := esp.New(mk(0x4000, esp.Outbound))
	tun.AddInbound(mk(0x4001, esp.Inbound))
	tun.RemoveInbound(0x4000, time.Hour)
	send := func(sa *esp.SA, src netip.Addr) {
		p := ipPacket(src, clientAddr)
		buf := make([]byte, esp.MaxHeadroom+len(p)+esp.MaxTailroom)
		copy(buf[esp.MaxHeadroom:], p)
		pkt, err := sa.Seal(buf, esp.MaxHeadroom, len(p), esp.NextHeaderIPv4)
		if err != nil {
			t.Fatal(err)
		}
		peer.Write(pkt)
	}
	send(oldOut, serverAddr)
	waitFor(t, "old SA delivers during grace", func() bool { return tun.Stats().PacketsIn == 1 })
	// Inner source outside the selectors: decrypted, then refused.
	send(oldOut, netip.MustParseAddr("192.0.2.66"))
	waitFor(t, "policy drop", func() bool { return tun.Stats().PolicyDrops == 1 })
	tun.RemoveInbound(0x4000, 0)
	send(oldOut, serverAddr)
	waitFor(t, "unknown SPI after removal", func() bool { return tun.Stats().UnknownSPI == 1 })
	s := tun.Stats()
	if len(s.SAs) != 1 || s.In.Packets != 2 || s.PacketsIn != 1 {
		t.Fatalf("stats %+v", s)
	}
	if d := s.Drops(); d["policy"] != 1 || d["unknown_spi"] != 1 || d["auth"] != 0 {
		t.Fatalf("drops %v", d)
	}
}

// ipPacket is a minimal IPv4/UDP packet from src to dst.
func ipPacket(src, dst netip.Addr) []byte {
	p := make([]byte, 28)
	p[0], p[3], p[8], p[9] = 0x45, 28, 64, 17
	copy(p[12:16], src.AsSlice())
	copy(p[16:20], dst.AsSlice())
	p[20], p[21], p[22], p[23], p[25] = 0x30, 0x39, 0x30, 0x39, 8
	return p
}

// An outbound SA that reaches its hard limit is retired: the keying layer
// hears about it, and dials wait for the replacement.
func TestHardExpiryClearsOutbound(t *testing.T) {
	events := make(chan esp.Event, 4)
	tun, _ := rawPeer(t, Config{OnSAEvent: func(e esp.Event) { events <- e }})
	out := mustESP(t, StaticSA{SPI: 0x6000, Suite: "aes128gcm16", Key: testKey}, esp.Outbound)
	out.Lifetime = esp.Lifetime{SoftPackets: 1, HardPackets: 2}
	if err := tun.SetOutbound(out); err != nil {
		t.Fatal(err)
	}
	pc, err := tun.ListenPacket(context.Background(), "udp", "")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range 2 {
		pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(10, 200, 0, 53), Port: 53})
	}
	for _, want := range []esp.EventKind{esp.EventSoft, esp.EventHard} {
		select {
		case e := <-events:
			if e.Kind != want || e.SPI != 0x6000 || e.Reason != esp.ReasonPackets {
				t.Fatalf("event %+v, want %v", e, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event", want)
		}
	}
	if _, up := tun.Outbound(); up {
		t.Fatal("expired outbound SA still installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := tun.DialContext(ctx, "udp", "10.200.0.53:53"); !errors.Is(err, ErrNoSA) {
		t.Fatalf("dial after expiry: %v", err)
	}
	if s := tun.Stats(); s.Out.Packets != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// Without Config.Conn the tunnel dials the gateway itself (port 4500 by
// default; here the test's port).
func TestDialsGateway(t *testing.T) {
	gw, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	tun, err := New(context.Background(), Config{Gateway: gw.LocalAddr().(*net.UDPAddr).AddrPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if err := tun.SendIKE(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	gw.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := gw.ReadFromUDP(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte("\x00\x00\x00\x00hello")) {
		t.Fatalf("gateway got %q, %v", buf[:n], err)
	}
	gw.WriteToUDP([]byte("\x00\x00\x00\x00world"), from)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if msg, err := tun.ReadIKE(ctx); err != nil || string(msg) != "world" {
		t.Fatalf("ReadIKE = %q, %v", msg, err)
	}
}

func TestConfigValidation(t *testing.T) {
	a, _ := udpPair(t)
	bad := []Config{
		{},
		{Conn: a, MTU: 100},
		{Conn: a, RemoteTS: []netip.Prefix{{}}},
		{Conn: a, MTU: 1200, Addresses: []netip.Addr{client6}},
		{Conn: a, Manual: &Manual{In: StaticSA{SPI: 0x1000, Suite: "aes128gcm16", Key: "zz"}}},
		{Conn: a, Manual: &Manual{In: StaticSA{SPI: 0x1000, Suite: "3des", Key: testKey}}},
		{Conn: a, Manual: &Manual{In: StaticSA{SPI: 0x1000, Suite: "aes128gcm16", Key: testKey},
			Out: StaticSA{SPI: 0x1001, Suite: "aes128gcm16", Key: testKey[:8]}}},
	}
	for i, cfg := range bad {
		if tun, err := New(context.Background(), cfg); err == nil {
			tun.Close()
			t.Errorf("config %d accepted", i)
		}
	}
}
