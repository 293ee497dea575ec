package cache

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/miekg/dns"
)

// entryOverhead approximates the memory an entry costs beyond its packed
// bytes: the entry struct, the LRU's list element and its map slot. It makes
// Config.MaxBytes a bound on memory rather than on payload alone.
const entryOverhead = 192 // measured: see TestMemoryPerEntry

// entry is one cached response. Everything but the fields marked "shard lock"
// is immutable after construction, so a hit copies buf outside the lock. It
// is laid out to fit Go's 48-byte size class: a million entries matter.
type entry struct {
	// buf is the packed response with ID 0 and no OPT record, followed by
	// the big-endian uint16 offsets of its TTL fields.
	buf    []byte
	expire int64  // unix nanoseconds
	ttl    uint32 // seconds, after clamping
	// failSecs (shard lock) is set when a refresh of an expired entry
	// failed: until expire+failSecs seconds the entry is served stale
	// without asking upstream again (RFC 8767 §5's failure recheck timer).
	failSecs uint32
	wireLen  uint16
	hits     uint16 // shard lock; saturates
	nameLen  uint8  // the question name is buf[12:12+nameLen+1]
	kflags   uint8  // keyDO, keyCD
	kind     kind
	prefetch bool // shard lock: Refresh was reported once
}

// failing reports whether a failed refresh still holds off upstream at now.
func (e *entry) failing(now int64) bool {
	return e.failSecs > 0 && now < e.expire+int64(e.failSecs)*int64(time.Second)
}

// failFor starts the failure recheck timer at now (after expiry) for d.
func (e *entry) failFor(now int64, d time.Duration) {
	secs := (now - e.expire + int64(d) + int64(time.Second) - 1) / int64(time.Second)
	e.failSecs = uint32(min(max(secs, 1), 1<<32-1))
}

// newEntry packs the selected records for the question q (whose wire name is
// name, already lower-cased) and records where their TTLs are.
func newEntry(q dns.Question, name []byte, req, resp *dns.Msg, s selection, ttl uint32, do bool, expire int64) (*entry, bool) {
	m := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Response:           true,
			RecursionDesired:   true,
			RecursionAvailable: true,
			// RFC 6840 §5.8: AD only for clients that asked for DNSSEC.
			AuthenticatedData: do && resp.AuthenticatedData,
			CheckingDisabled:  req.CheckingDisabled,
			Rcode:             resp.Rcode,
		},
		Compress: true,
		Question: []dns.Question{q},
		Answer:   s.answer,
		Ns:       s.ns,
	}
	wire, err := m.Pack()
	if err != nil || len(wire) < headerLen+len(name)+4 {
		return nil, false
	}
	// The question bytes become the canonical (lower-case) key; each hit
	// overwrites them with the client's spelling.
	copy(wire[headerLen:], name)
	var kf uint8
	if do {
		kf |= keyDO
	}
	if req.CheckingDisabled {
		kf |= keyCD
	}
	return entryFromWire(wire, len(name), kf, s.kind, ttl, expire)
}

// entryFromWire makes an entry of a packed response whose question name is
// nameLen bytes long, recording where its TTLs are. It checks the structure,
// for it also reads entries shared through Redis.
func entryFromWire(wire []byte, nameLen int, kf uint8, k kind, ttl uint32, expire int64) (*entry, bool) {
	if nameLen < 1 || nameLen > maxName || len(wire) > 0xffff || len(wire) < headerLen+nameLen+4 {
		return nil, false
	}
	offs, err := ttlOffsets(make([]byte, 0, 16), wire)
	if err != nil {
		return nil, false
	}
	// One allocation of the exact size: wire followed by the offsets.
	buf := make([]byte, len(wire)+len(offs))
	copy(buf[copy(buf, wire):], offs)
	return &entry{
		buf:     buf,
		wireLen: uint16(len(wire)),
		nameLen: uint8(nameLen - 1),
		kflags:  kf,
		kind:    k,
		ttl:     ttl,
		expire:  expire,
	}, true
}

// matches reports whether the entry belongs to key (see appendKey).
func (e *entry) matches(key []byte) bool {
	n := int(e.nameLen) + 1 + 4
	return len(key) == n+1 && key[n] == e.kflags && bytes.Equal(e.buf[headerLen:headerLen+n], key[:n])
}

func (e *entry) size() int64 { return int64(len(e.buf)) + entryOverhead }

// respLen is the length of the response appendTo produces.
func (e *entry) respLen(edns, stale bool) int {
	n := int(e.wireLen)
	if edns {
		n += optLen
		if stale {
			n += edeLen
		}
	}
	return n
}

// appendTo appends the response for a query with the given ID, RD bit and
// question name bytes (same name as the entry's, in the client's case), with
// every TTL set to ttl, and an OPT record when the query had EDNS.
func (e *entry) appendTo(dst []byte, id uint16, rd bool, qname []byte, edns, do, stale bool, ttl uint32) []byte {
	start := len(dst)
	dst = append(dst, e.buf[:e.wireLen]...)
	r := dst[start:]
	binary.BigEndian.PutUint16(r, id)
	flags := binary.BigEndian.Uint16(r[2:]) &^ flagRD
	if rd {
		flags |= flagRD
	}
	binary.BigEndian.PutUint16(r[2:], flags)
	copy(r[headerLen:], qname)
	offs := e.buf[e.wireLen:]
	for i := 0; i+1 < len(offs); i += 2 {
		binary.BigEndian.PutUint32(r[binary.BigEndian.Uint16(offs[i:]):], ttl)
	}
	if edns {
		binary.BigEndian.PutUint16(r[10:], binary.BigEndian.Uint16(r[10:])+1)
		dst = appendOPT(dst, do, stale)
	}
	return dst
}
