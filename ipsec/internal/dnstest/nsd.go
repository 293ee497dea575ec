package dnstest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
)

// Zone is the zone NSD serves: Name (e.g. "internal.example.") with
// q0 … q{N-1} A records, qI → AddrOf(I).
const Zone = "internal.example."

// Names is how many qI names the zone holds.
const Names = 1000

// AddrOf is the address the zone gives qI.
func AddrOf(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}) }

// StartNSD runs NSD on 127.0.0.1 with Zone, stopped at cleanup. It skips (or
// fails under CI) when NSD is missing.
func StartNSD(t testing.TB) netip.AddrPort {
	t.Helper()
	var zone strings.Builder
	for i := range Names {
		fmt.Fprintf(&zone, "q%d A %s\n", i, AddrOf(i))
	}
	return testenv.StartNSD(t, testenv.NSDConfig{Zones: map[string]string{Zone: zone.String()}}).Addr
}

// ExchangeUDP sends one query over the host's UDP and returns the reply.
func ExchangeUDP(addr string, q []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return Exchange(c, q, timeout)
}

// Exchange sends q on a datagram conn and reads the reply with q's ID.
func Exchange(c net.Conn, q []byte, timeout time.Duration) ([]byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 2 && buf[0] == q[0] && buf[1] == q[1] {
			return buf[:n], nil
		}
	}
}

// ExchangeStream sends q with the 2-byte length prefix of DNS over TCP
// (RFC 1035 §4.2.2) and reads one framed reply.
func ExchangeStream(c net.Conn, q []byte, timeout time.Duration) ([]byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := readFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, int(l[0])<<8|int(l[1]))
	_, err := readFull(c, msg)
	return msg, err
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
