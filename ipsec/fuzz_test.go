package ipsec

import (
	"context"
	"net/netip"
	"testing"

	"github.com/laminadns/lamina/ipsec/esp"
)

// accounted sums every counter a received datagram can end up in.
func accounted(s Stats) uint64 {
	return s.KeepalivesReceived + s.IKEReceived + s.UnknownSPI + s.PolicyDrops + s.InjectErrors + s.PacketsIn +
		s.In.ReplayDrops + s.In.AuthFailures + s.In.DecryptErrors + s.In.PadErrors + s.In.DummyDrops + s.In.LifetimeDrops
}

// FuzzReceive feeds arbitrary datagrams to the outer-socket demultiplexer
// of a keyed tunnel: it must never panic and must count each datagram in
// exactly one place.
func FuzzReceive(f *testing.F) {
	a, _ := udpPair(f)
	mc, ms := staticPair("chacha20poly1305", 0x5000, testKey+"2122232425262728292a2b2c2d2e2f30", "")
	tun, err := New(context.Background(), Config{Conn: a, Addresses: []netip.Addr{clientAddr},
		RemoteTS: []netip.Prefix{serverNet}, Manual: mc, Keepalive: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tun.Close() })
	peer, err := esp.New(mustESP(f, ms.Out, esp.Outbound))
	if err != nil {
		f.Fatal(err)
	}
	sealed := func(p []byte, nh byte) []byte {
		buf := make([]byte, esp.MaxHeadroom+len(p)+esp.MaxTailroom)
		copy(buf[esp.MaxHeadroom:], p)
		pkt, err := peer.Seal(buf, esp.MaxHeadroom, len(p), nh)
		if err != nil {
			f.Fatal(err)
		}
		return pkt
	}
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{0, 0, 0x50, 0x01, 0, 0, 0, 9})
	f.Add(sealed(ipPacket(serverAddr, clientAddr), esp.NextHeaderIPv4))
	f.Add(sealed(ipPacket(netip.MustParseAddr("192.0.2.1"), clientAddr), esp.NextHeaderIPv4))
	f.Add(sealed(ipPacket(serverAddr, clientAddr), esp.NextHeaderIPv6))
	f.Add(sealed([]byte("not ip"), 1))
	f.Add(sealed(nil, esp.NextHeaderDummy))
	f.Add(sealed(nil, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		before := accounted(tun.Stats())
		tun.receive(data)
		if after := accounted(tun.Stats()); after != before+1 {
			t.Fatalf("datagram counted %d times: %+v", after-before, tun.Stats())
		}
	})
}
