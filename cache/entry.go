package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// entryOverhead approximates the memory an entry costs beyond its bytes:
// golang-lru's list element (80 bytes) and its map slot (16 bytes, 35–45
// with the map's free slots and control bytes). It makes Config.MaxBytes a
// bound on memory rather than on payload alone.
const entryOverhead = 128 // measured: see TestMemoryPerEntry

// entry is one cached response in one pointer-free allocation, which the GC
// never scans: a million entries matter. Layout (little-endian):
//
//	[0:8)   expire, unix nanoseconds
//	[8:12)  TTL in seconds, after clamping
//	[12:16) failSecs (shard lock): set when a refresh of an expired entry
//	        failed; until expire+failSecs seconds it is served stale without
//	        asking upstream again (RFC 8767 §5's failure recheck timer)
//	[16:18) hits (shard lock), saturating
//	[18]    prefetch (shard lock): Refresh was reported once
//	[19]    kind<<2 | key flags (keyDO, keyCD)
//	[20:22) length of the packed response
//	[22:…)  the packed response with ID 0 and no OPT record; its question is
//	        the key's (lower-case) name, type and class
//	[…:end) the big-endian uint16 offsets of its TTL fields
//
// Everything but the shard-lock fields is immutable once stored, so a hit
// copies the response outside the lock.
type entry []byte

// ref is an entry as the LRU holds it: 16 bytes where a slice header takes
// 24, which keeps golang-lru's list element in Go's 80-byte size class
// instead of 96 (measured: 16 bytes less per entry). p points at the start
// of the entry's allocation, so it keeps the whole entry alive.
type ref struct {
	p *byte
	n int
}

func refOf(e entry) ref    { return ref{unsafe.SliceData(e), len(e)} }
func (r ref) entry() entry { return unsafe.Slice(r.p, r.n) }

const (
	offExpire   = 0
	offTTL      = 8
	offFail     = 12
	offHits     = 16
	offPrefetch = 18
	offFlags    = 19
	offWireLen  = 20
	entryHeader = 22
)

var le = binary.LittleEndian

func (e entry) expire() int64    { return int64(le.Uint64(e[offExpire:])) }
func (e entry) ttl() uint32      { return le.Uint32(e[offTTL:]) }
func (e entry) kind() kind       { return kind(e[offFlags] >> 2) }
func (e entry) keyFlags() uint8  { return e[offFlags] & (keyDO | keyCD) }
func (e entry) wireLen() int     { return int(le.Uint16(e[offWireLen:])) }
func (e entry) wire() []byte     { return e[entryHeader : entryHeader+e.wireLen()] }
func (e entry) hits() uint16     { return le.Uint16(e[offHits:]) }
func (e entry) setHits(n uint16) { le.PutUint16(e[offHits:], n) }
func (e entry) prefetch() bool   { return e[offPrefetch] != 0 }
func (e entry) setPrefetch()     { e[offPrefetch] = 1 }

// failing reports whether a failed refresh still holds off upstream at now.
func (e entry) failing(now int64) bool {
	secs := le.Uint32(e[offFail:])
	return secs > 0 && now < e.expire()+int64(secs)*int64(time.Second)
}

// failFor starts the failure recheck timer at now (after expiry) for d.
func (e entry) failFor(now int64, d time.Duration) {
	secs := (now - e.expire() + int64(d) + int64(time.Second) - 1) / int64(time.Second)
	le.PutUint32(e[offFail:], uint32(min(max(secs, 1), 1<<32-1)))
}

// newEntry packs the selected records for the question q (whose wire name is
// name, already lower-cased) and records where their TTLs are, packing
// with a *packer from packers.
func newEntry(packers *sync.Pool, q dns.Question, name []byte, req, resp *dns.Msg, s selection, ttl uint32, do bool, expire int64) (entry, bool) {
	bits := uint16(flagQR|flagRD|flagRA) | uint16(resp.Rcode&0xf)
	if do && resp.AuthenticatedData { // RFC 6840 §5.8: AD only for clients that asked for DNSSEC
		bits |= flagAD
	}
	if req.CheckingDisabled {
		bits |= flagCD
	}
	p := packers.Get().(*packer)
	defer packers.Put(p)
	wire, err := p.pack(bits, q, s.answer, s.ns)
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
	return entryFromWire(wire, kf, s.kind, ttl, expire)
}

// entryFromWire makes an entry of a packed response, recording where its
// TTLs are. It checks the structure, for it also reads entries shared
// through Redis; matches checks the question against the key.
func entryFromWire(wire []byte, kf uint8, k kind, ttl uint32, expire int64) (entry, bool) {
	if len(wire) > 0xffff || len(wire) < headerLen+1+4 {
		return nil, false
	}
	var ob [64]byte
	offs, err := ttlOffsets(ob[:0], wire)
	if err != nil {
		return nil, false
	}
	e := make(entry, entryHeader+len(wire)+len(offs))
	le.PutUint64(e[offExpire:], uint64(expire))
	le.PutUint32(e[offTTL:], ttl)
	e[offFlags] = uint8(k)<<2 | kf&(keyDO|keyCD)
	le.PutUint16(e[offWireLen:], uint16(len(wire)))
	copy(e[entryHeader+copy(e[entryHeader:], wire):], offs)
	return e, true
}

// matches reports whether the entry belongs to key (see appendKey). Wire
// names are prefix-free, so equal bytes mean an equal question.
func (e entry) matches(key []byte) bool {
	n := len(key) - 1
	w := e.wire()
	return n > 4 && len(w) >= headerLen+n && key[n] == e.keyFlags() && bytes.Equal(w[headerLen:headerLen+n], key[:n])
}

// hasName reports whether the entry's question name is name (lower-cased).
func (e entry) hasName(name []byte) bool {
	w := e.wire()
	return len(w) >= headerLen+len(name) && bytes.Equal(w[headerLen:headerLen+len(name)], name)
}

func (e entry) size() int64 { return int64(len(e)) + entryOverhead }

// respLen is the length of the response appendTo produces.
func (e entry) respLen(edns, stale bool) int {
	n := e.wireLen()
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
func (e entry) appendTo(dst []byte, id uint16, rd bool, qname []byte, edns, do, stale bool, ttl uint32) []byte {
	start := len(dst)
	end := entryHeader + e.wireLen()
	dst = append(dst, e[entryHeader:end]...)
	r := dst[start:]
	binary.BigEndian.PutUint16(r, id)
	flags := binary.BigEndian.Uint16(r[2:]) &^ flagRD
	if rd {
		flags |= flagRD
	}
	binary.BigEndian.PutUint16(r[2:], flags)
	copy(r[headerLen:], qname)
	offs := e[end:]
	for i := 0; i+1 < len(offs); i += 2 {
		binary.BigEndian.PutUint32(r[binary.BigEndian.Uint16(offs[i:]):], ttl)
	}
	if edns {
		binary.BigEndian.PutUint16(r[10:], binary.BigEndian.Uint16(r[10:])+1)
		dst = appendOPT(dst, do, stale)
	}
	return dst
}

// packer is Set's reusable scratch space: a buffer any DNS message fits in
// and a compression map. Msg.Pack makes a new map on every call; that
// garbage, not the entries, is what made the heap (and so the RSS) grow
// well beyond the live entries while the cache fills.
type packer struct {
	buf  []byte
	comp map[string]int
}

func newPacker() any {
	return &packer{buf: make([]byte, 0xffff), comp: make(map[string]int)}
}

var errTooMany = errors.New("cache: too many records")

// pack packs a response of header bits (flags and rcode), the question q
// and the records, compressed as Msg.Pack would, with ID 0 and no
// additional section. The result is valid until the next pack.
func (p *packer) pack(bits uint16, q dns.Question, answer, ns []dns.RR) ([]byte, error) {
	if len(answer) > 0xffff || len(ns) > 0xffff {
		return nil, errTooMany
	}
	if len(p.comp) > 64 {
		p.comp = make(map[string]int) // don't keep clearing a big one
	}
	clear(p.comp)
	msg := p.buf
	clear(msg[:headerLen])
	binary.BigEndian.PutUint16(msg[2:], bits)
	binary.BigEndian.PutUint16(msg[4:], 1)
	binary.BigEndian.PutUint16(msg[6:], uint16(len(answer)))
	binary.BigEndian.PutUint16(msg[8:], uint16(len(ns)))
	off, err := dns.PackDomainName(q.Name, msg, headerLen, p.comp, true)
	if err != nil {
		return nil, err
	}
	if off+4 > len(msg) {
		return nil, dns.ErrBuf
	}
	binary.BigEndian.PutUint16(msg[off:], q.Qtype)
	binary.BigEndian.PutUint16(msg[off+2:], q.Qclass)
	off += 4
	for _, sec := range [2][]dns.RR{answer, ns} {
		for _, rr := range sec {
			// PackRR sets the record's Rdlength: pack a copy, since the
			// caller's messages are not the cache's to modify.
			if off, err = dns.PackRR(dns.Copy(rr), msg, off, p.comp, true); err != nil {
				return nil, err
			}
		}
	}
	return msg[:off], nil
}
