package dnstest

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
)

// Record types used by the tests.
const (
	TypeA    = 1
	TypeAAAA = 28
)

// Query returns a DNS query (RFC 1035 §4.1) for name and qtype with the RD
// bit set.
func Query(id uint16, name string, qtype uint16) []byte {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	b[2] = 0x01                          // RD
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1) // IN
}

// Answer is what the tests check in a response.
type Answer struct {
	ID    uint16
	Rcode int
	Addrs []netip.Addr // A and AAAA records of the answer section
}

var errShort = errors.New("dnstest: truncated message")

// Parse reads a response's header and answer section.
func Parse(msg []byte) (Answer, error) {
	if len(msg) < 12 {
		return Answer{}, errShort
	}
	a := Answer{ID: binary.BigEndian.Uint16(msg), Rcode: int(msg[3] & 0x0f)}
	if msg[2]&0x80 == 0 {
		return a, errors.New("dnstest: not a response")
	}
	qd, an := int(binary.BigEndian.Uint16(msg[4:])), int(binary.BigEndian.Uint16(msg[6:]))
	off := 12
	var err error
	for range qd {
		if off, err = skipName(msg, off); err != nil {
			return a, err
		}
		off += 4
	}
	for range an {
		if off, err = skipName(msg, off); err != nil {
			return a, err
		}
		if off+10 > len(msg) {
			return a, errShort
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10
		if off+rdlen > len(msg) {
			return a, errShort
		}
		if ip, ok := netip.AddrFromSlice(msg[off : off+rdlen]); ok && (typ == TypeA || typ == TypeAAAA) {
			a.Addrs = append(a.Addrs, ip)
		}
		off += rdlen
	}
	return a, nil
}

// skipName steps over a possibly compressed name (RFC 1035 §4.1.4).
func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errShort
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xc0 == 0xc0:
			return off + 2, nil
		}
		off += 1 + l
	}
}
