package ipsec

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/laminadns/lamina/ipsec/esp"
)

// peerConn turns an unconnected UDP socket into the connected net.Conn a
// Tunnel takes, with a fixed peer; datagrams from elsewhere are ignored.
type peerConn struct {
	*net.UDPConn
	peer *net.UDPAddr
}

func (c *peerConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.UDPConn.ReadFromUDP(b)
		if err != nil || from.AddrPort() == c.peer.AddrPort() {
			return n, err
		}
	}
}
func (c *peerConn) Write(b []byte) (int, error) { return c.UDPConn.WriteToUDP(b, c.peer) }
func (c *peerConn) RemoteAddr() net.Addr        { return c.peer }

// udpPair returns two loopback UDP sockets, each connected to the other.
func udpPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	la, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return &peerConn{la, lb.LocalAddr().(*net.UDPAddr)}, &peerConn{lb, la.LocalAddr().(*net.UDPAddr)}
}

// connectedPair returns two loopback UDP sockets connected to each other
// with connect(2), as a real tunnel's socket is (so batched I/O is used).
func connectedPair(t testing.TB) (a, b net.Conn) {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	for range 20 {
		l, err := net.ListenUDP("udp", lo)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := net.DialUDP("udp", lo, l.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		// Rebind l's port as a connected socket; another process may take
		// the port in between, then try again.
		l.Close()
		ac, err := net.DialUDP("udp", l.LocalAddr().(*net.UDPAddr), bc.LocalAddr().(*net.UDPAddr))
		if err == nil {
			return ac, bc
		}
		bc.Close()
	}
	t.Fatal("no connected UDP pair")
	return nil, nil
}

var (
	clientAddr = netip.MustParseAddr("10.201.0.2")
	serverAddr = netip.MustParseAddr("10.200.0.53")
	clientNet  = netip.MustParsePrefix("10.201.0.0/24")
	serverNet  = netip.MustParsePrefix("10.200.0.0/24")
	client6    = netip.MustParseAddr("fd00:201::2")
	server6    = netip.MustParseAddr("fd00:200::53")
	client6Net = netip.MustParsePrefix("fd00:201::/64")
	server6Net = netip.MustParsePrefix("fd00:200::/64")
)

// keyPair returns mirrored esp.Configs: a→b is SPI spiAB, b→a is spiAB+1.
func staticPair(suite string, spi uint32, keyHex, integHex string) (a, b *Manual) {
	ab := StaticSA{SPI: spi, Suite: suite, Key: keyHex, IntegKey: integHex}
	ba := StaticSA{SPI: spi + 1, Suite: suite, Key: keyHex[2:] + keyHex[:2], IntegKey: integHex}
	return &Manual{Out: ab, In: ba}, &Manual{Out: ba, In: ab}
}

const testKey = "000102030405060708090a0b0c0d0e0f10111213" // AES-128 + salt

// tunnelPair starts a client tunnel and a gateway-side tunnel back to back
// over loopback UDP, keyed manually (or not, when manual is false).
func tunnelPair(t testing.TB, manual bool) (client, server *Tunnel) {
	t.Helper()
	ca, cb := connectedPair(t)
	mc, ms := staticPair("aes128gcm16", 0x1000, testKey, "")
	if !manual {
		mc, ms = nil, nil
	}
	var err error
	client, err = New(context.Background(), Config{Conn: ca, Addresses: []netip.Addr{clientAddr, client6},
		RemoteTS: []netip.Prefix{serverNet, server6Net}, Manual: mc})
	if err != nil {
		t.Fatal(err)
	}
	server, err = New(context.Background(), Config{Conn: cb, Addresses: []netip.Addr{serverAddr, server6},
		RemoteTS: []netip.Prefix{clientNet, client6Net}, Manual: ms})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func mustESP(t testing.TB, s StaticSA, d esp.Direction) esp.Config {
	t.Helper()
	c, err := s.ESPConfig(d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
