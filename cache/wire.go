package cache

import (
	"encoding/binary"
	"errors"
)

// The wire-format helpers of the hit path. They read only what a cache hit
// needs and reject anything unusual, leaving it to the slow path (Get).

const (
	headerLen = 12
	maxName   = 255                 // RFC 1035 §3.1: a name is at most 255 octets
	maxKey    = maxName + 2 + 2 + 1 // name, type, class, flags

	flagQR     = 0x8000
	flagOpcode = 0x7800
	flagAA     = 0x0400
	flagTC     = 0x0200
	flagRD     = 0x0100
	flagRA     = 0x0080
	flagAD     = 0x0020
	flagCD     = 0x0010

	keyDO = 1 << 0 // key flag bits
	keyCD = 1 << 1

	typeOPT      = 41
	ednsUDPSize  = 1232 // what Lamina advertises (DNS Flag Day 2020), as resolver.DefaultUDPSize
	optLen       = 11   // root name, type, class, TTL, RDLENGTH
	edeLen       = 6    // option code, length, INFO-CODE (no EXTRA-TEXT)
	edeOption    = 15   // RFC 8914 option code
	edeStale     = 3    // RFC 8914 §4.4 Stale Answer
	optCookie    = 10   // RFC 7873
	optPadding   = 12   // RFC 7830
	optKeepalive = 11   // RFC 7828
)

// wireQuery is what the hit path learns from a raw query.
type wireQuery struct {
	nameEnd       int // raw[headerLen:nameEnd] is the question name
	qtype, qclass uint16
	edns, do      bool
}

// parseQuery accepts a plain query: one question with an uncompressed name,
// nothing else but an optional OPT of EDNS version 0. The options it accepts
// are a well-formed client COOKIE, which Lamina ignores like a server
// without cookie support (RFC 7873 §5.2.1) on both paths, and Padding (RFC
// 7830) and edns-tcp-keepalive (RFC 7828), which the transport adds to the
// answer; any other option (ECS, …) needs the slow path, so such queries are
// refused.
func parseQuery(raw []byte) (q wireQuery, ok bool) {
	if len(raw) < headerLen+5 {
		return q, false
	}
	flags := binary.BigEndian.Uint16(raw[2:])
	if flags&(flagQR|flagOpcode|flagTC) != 0 ||
		binary.BigEndian.Uint16(raw[4:]) != 1 || binary.BigEndian.Uint16(raw[6:]) != 0 ||
		binary.BigEndian.Uint16(raw[8:]) != 0 || binary.BigEndian.Uint16(raw[10:]) > 1 {
		return q, false
	}
	off := headerLen
	for {
		if off >= len(raw) || off-headerLen >= maxName {
			return q, false
		}
		l := int(raw[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 { // compression pointers and extended label types
			return q, false
		}
		off += 1 + l
	}
	q.nameEnd = off
	if off+4 > len(raw) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(raw[off:])
	q.qclass = binary.BigEndian.Uint16(raw[off+2:])
	off += 4
	if binary.BigEndian.Uint16(raw[10:]) == 1 {
		if off+optLen > len(raw) || raw[off] != 0 ||
			binary.BigEndian.Uint16(raw[off+1:]) != typeOPT ||
			raw[off+6] != 0 || // EDNS version 0 only; BADVERS is the slow path's
			off+optLen+int(binary.BigEndian.Uint16(raw[off+9:])) != len(raw) ||
			!ignorableOptions(raw[off+optLen:]) {
			return q, false
		}
		q.edns = true
		q.do = raw[off+7]&0x80 != 0
		off = len(raw)
	}
	return q, off == len(raw)
}

// ignorableOptions reports whether the OPT RDATA holds nothing but client
// cookies of RFC 7873 §4's lengths (8, or 16 to 40 with a server cookie),
// Padding options and an empty edns-tcp-keepalive.
func ignorableOptions(opts []byte) bool {
	for len(opts) > 0 {
		if len(opts) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if 4+n > len(opts) {
			return false
		}
		switch {
		case code == optPadding:
		case code == optKeepalive && n == 0: // RFC 7828 §3.2.1: no TIMEOUT from a client
		case code == optCookie && (n == 8 || n >= 16 && n <= 40):
		default:
			return false
		}
		opts = opts[4+n:]
	}
	return true
}

// appendKey appends the cache key: the lower-cased wire name, type, class and
// the DO/CD flags.
func appendKey(k, name []byte, qtype, qclass uint16, do, cd bool) []byte {
	for _, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		k = append(k, b)
	}
	k = binary.BigEndian.AppendUint16(k, qtype)
	k = binary.BigEndian.AppendUint16(k, qclass)
	var f byte
	if do {
		f |= keyDO
	}
	if cd {
		f |= keyCD
	}
	return append(k, f)
}

var errWire = errors.New("cache: malformed packed response")

// ttlOffsets walks a packed message and appends the offset of every RR's TTL
// field (big-endian uint16 each) to offs.
func ttlOffsets(offs, msg []byte) ([]byte, error) {
	if len(msg) < headerLen {
		return offs, errWire
	}
	off := headerLen
	for range binary.BigEndian.Uint16(msg[4:]) {
		var err error
		if off, err = skipName(msg, off); err != nil {
			return offs, err
		}
		off += 4
	}
	n := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) +
		int(binary.BigEndian.Uint16(msg[10:]))
	for range n {
		var err error
		if off, err = skipName(msg, off); err != nil {
			return offs, err
		}
		if off+10 > len(msg) {
			return offs, errWire
		}
		offs = binary.BigEndian.AppendUint16(offs, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	if off != len(msg) {
		return offs, errWire
	}
	return offs, nil
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(msg []byte, off int) (int, error) {
	for range 128 {
		if off >= len(msg) {
			return 0, errWire
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			return off + 2, nil
		case l > 63:
			return 0, errWire
		}
		off += 1 + l
	}
	return 0, errWire
}

// appendOPT appends an OPT record (and EDE 3 when stale) for a client that
// sent EDNS, as RFC 6891 §7 requires of the response.
func appendOPT(dst []byte, do, stale bool) []byte {
	var flags byte
	if do {
		flags = 0x80
	}
	rdlen := byte(0)
	if stale {
		rdlen = edeLen
	}
	dst = append(dst, 0, 0, typeOPT, ednsUDPSize>>8, ednsUDPSize&0xff, 0, 0, flags, 0, 0, rdlen)
	if stale {
		dst = append(dst, 0, edeOption, 0, 2, 0, edeStale)
	}
	return dst
}
