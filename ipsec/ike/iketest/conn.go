package iketest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Conn adapts a UDP socket to port 4500 into ike.Conn: IKE messages carry the
// 4-byte non-ESP marker (RFC 3948 §2.2); ESP packets go to ESP; NAT
// keepalives are dropped.
type Conn struct {
	UDP *net.UDPConn
	ESP chan []byte
}

// NewConn wraps c.
func NewConn(c *net.UDPConn) *Conn { return &Conn{UDP: c, ESP: make(chan []byte, 64)} }

// Send implements ike.Conn.
func (c *Conn) Send(b []byte) error {
	_, err := c.UDP.Write(append([]byte{0, 0, 0, 0}, b...))
	return err
}

// Receive implements ike.Conn.
func (c *Conn) Receive(ctx context.Context) ([]byte, error) {
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		c.UDP.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.UDP.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, err
		}
		switch {
		case n == 1 && buf[0] == 0xff:
		case n >= 4 && binary.BigEndian.Uint32(buf) == 0:
			return append([]byte(nil), buf[4:n]...), nil
		case n >= 8:
			select {
			case c.ESP <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}
	return nil, ctx.Err()
}

// DNSQuery returns a DNS query (RFC 1035 §4.1) for name/type A with id.
func DNSQuery(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD, QDCOUNT 1
	for _, label := range splitLabels(name) {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0, 0, 1, 0, 1)
}

func splitLabels(name string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if i > start {
				out = append(out, name[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// UDP4 builds an IPv4/UDP packet.
func UDP4(src, dst netip.AddrPort, payload []byte) []byte {
	n := 28 + len(payload)
	p := make([]byte, 28, n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	binary.BigEndian.PutUint16(p[10:], ^csum(0, p[:20]))
	binary.BigEndian.PutUint16(p[20:], src.Port())
	binary.BigEndian.PutUint16(p[22:], dst.Port())
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	p = append(p, payload...)
	pseudo := append(append(append([]byte{}, s4[:]...), d4[:]...), 0, 17, byte((8+len(payload))>>8), byte(8+len(payload)))
	c := ^csum(uint32(csum(0, pseudo)), p[20:])
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(p[26:], c)
	return p
}

func csum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// ParseUDP4 returns the source and payload of an IPv4/UDP packet.
func ParseUDP4(p []byte) (src netip.AddrPort, payload []byte, err error) {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 17 {
		return src, nil, errors.New("not IPv4/UDP")
	}
	ihl := int(p[0]&0xf) * 4
	if len(p) < ihl+8 {
		return src, nil, errors.New("short packet")
	}
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(p[ihl:]))
	return src, p[ihl+8:], nil
}
