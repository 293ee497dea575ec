package dnswire

import "encoding/binary"

// HeaderLen is the length of a message header (RFC 1035 §4.1.1).
const HeaderLen = 12

// SkipName returns the offset just past the (possibly compressed) name at
// off in msg, or -1.
func SkipName(msg []byte, off int) int {
	for n := 0; off < len(msg) && n < 128; n++ {
		switch l := msg[off]; {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		case l&0xC0 != 0:
			return -1
		default:
			off += 1 + int(l)
		}
	}
	return -1
}

// SkipQuestions returns the offset of msg's first resource record and the
// number of records after the question section, or ok false when msg is
// too short for what its header announces.
func SkipQuestions(msg []byte) (off, records int, ok bool) {
	if len(msg) < HeaderLen {
		return 0, 0, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	records = int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off = HeaderLen
	for range qd {
		if off = SkipName(msg, off); off < 0 || off+4 > len(msg) {
			return 0, 0, false
		}
		off += 4
	}
	return off, records, true
}

// RR reads the resource record at off: its TYPE and TTL, and the offset of
// the next record; ok is false when it runs past msg.
func RR(msg []byte, off int) (typ uint16, ttl uint32, next int, ok bool) {
	if off = SkipName(msg, off); off < 0 || off+10 > len(msg) {
		return 0, 0, 0, false
	}
	typ = binary.BigEndian.Uint16(msg[off:])
	ttl = binary.BigEndian.Uint32(msg[off+4:])
	next = off + 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	return typ, ttl, next, next <= len(msg)
}
