package do53

import "encoding/binary"

// padWire is pad (RFC 8467) on a packed response: it adds a Padding option
// to the OPT record that ends msg so that msg becomes a multiple of
// paddingBlock bytes, or as long as maxSize allows, and leaves msg as it is
// when even the option's header does not fit, as pad does. It reports false,
// msg untouched, when msg does not end with an OPT record or already holds a
// Padding option; the caller then takes the slow path. The fast path's
// answers (the cache's) always end with their OPT record.
func padWire(msg []byte, maxSize int) ([]byte, bool) {
	if len(msg) < headerLen {
		return msg, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	if binary.BigEndian.Uint16(msg[10:]) == 0 {
		return msg, false
	}
	off := headerLen
	for range qd {
		if off = skipName(msg, off); off < 0 || off+4 > len(msg) {
			return msg, false
		}
		off += 4
	}
	for range rrs - 1 {
		if off = skipName(msg, off); off < 0 || off+10 > len(msg) {
			return msg, false
		}
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		if off > len(msg) {
			return msg, false
		}
	}
	// The last record: root owner, TYPE OPT, CLASS, TTL, RDLENGTH, options.
	opt := off
	if opt+11 > len(msg) || msg[opt] != 0 || binary.BigEndian.Uint16(msg[opt+1:]) != 41 ||
		opt+11+int(binary.BigEndian.Uint16(msg[opt+9:])) != len(msg) {
		return msg, false
	}
	for o := opt + 11; o < len(msg); {
		if o+4 > len(msg) {
			return msg, false
		}
		if binary.BigEndian.Uint16(msg[o:]) == 12 { // already padded
			return msg, false
		}
		o += 4 + int(binary.BigEndian.Uint16(msg[o+2:]))
		if o > len(msg) {
			return msg, false
		}
	}
	l := len(msg) + 4
	n := (paddingBlock - l%paddingBlock) % paddingBlock
	if l+n > maxSize {
		n = maxSize - l
	}
	if n < 0 {
		return msg, true
	}
	rdlen := int(binary.BigEndian.Uint16(msg[opt+9:])) + 4 + n
	if rdlen > 0xffff {
		return msg, false
	}
	binary.BigEndian.PutUint16(msg[opt+9:], uint16(rdlen))
	msg = append(msg, 0, 12, byte(n>>8), byte(n))
	return append(msg, zeros[:n]...), true
}

// skipName returns the offset just past the (possibly compressed) name at
// off in msg, or -1.
func skipName(msg []byte, off int) int {
	for n := 0; off < len(msg) && n < 128; n++ {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xc0 == 0xc0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		case l > 63:
			return -1
		}
		off += 1 + l
	}
	return -1
}
