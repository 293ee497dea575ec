package upstream

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pipeNetwork is a Network whose TCP dials reach serve over net.Pipe.
type pipeNetwork struct{ serve func(net.Conn) }

func (p pipeNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, s := net.Pipe()
	go p.serve(s)
	return c, nil
}

func (p pipeNetwork) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return nil, net.UnknownNetworkError(network)
}

// FuzzTCPStream plays a server that answers a TCP upstream's query with
// arbitrary bytes (the first frame's ID patched to the query's, so matching
// answers are reachable): the exchange ends with an answer that matches the
// query or an error, never a panic or a hang.
func FuzzTCPStream(f *testing.F) {
	req := query("www.example.", dns.TypeA)
	good, _ := answer(req, "192.0.2.1").Pack()
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	f.Add(frame(good))
	f.Add(append(frame([]byte{1, 2, 3}), frame(good)...))
	f.Add(frame(good)[:10])
	f.Add([]byte{0xff, 0xff, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		serve := func(c net.Conn) {
			defer c.Close()
			q, err := readFrame(c)
			if err != nil {
				return
			}
			out := append([]byte(nil), data...)
			if len(out) >= 4 {
				binary.BigEndian.PutUint16(out[2:], q.Id)
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(out)
		}
		u := NewTCP(netipLoopback53, Options{Network: pipeNetwork{serve}, Timeout: 100 * time.Millisecond})
		defer u.Close()
		resp, err := u.Exchange(context.Background(), req)
		if err == nil {
			if _, ok := checkResponse(req, resp); !ok {
				t.Fatal("accepted a non-matching answer")
			}
		}
	})
}

var netipLoopback53 = netip.MustParseAddrPort("127.0.0.1:53")
