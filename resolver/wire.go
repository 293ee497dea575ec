package resolver

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// ServeWire answers fresh cache hits straight from the packed query, without
// decoding it: ACL, a question that is not under local or special-use zones
// nor owned by a self record, not ANY or a meta type, class IN, a fresh
// cache entry, and a rate limit token, taken last so that only an answered
// query spends one. Everything else declines with no side effect, and
// ServeDNS then applies the full policy; so a declined query takes its rate
// limit token exactly once, there.
func (r *Resolver) ServeWire(q *Query, raw, dst []byte) ([]byte, bool) {
	if r.cache == nil {
		return dst, false
	}
	client := q.Client.Addr()
	if !aclFor(r.acls, r.defACL, q.Listener).Allowed(client) {
		return dst, false
	}
	var name [256]byte
	var offs [128]uint8
	n, k, qtype, ok := parseQuestion(raw, &name, &offs)
	if !ok || r.local.isLocalWire(name[:n], offs[:k]) {
		return dst, false
	}
	// Self records come before the cache in ServeDNS; a cached public
	// answer for the same name (a shared cache, a reload that added a
	// service name) must not shadow them.
	if _, own := r.selfNames[string(name[:n])]; own {
		return dst, false
	}
	out, fr := r.cache.AppendWire(dst, raw, q.MaxSize)
	if fr != Fresh || len(out) < len(dst)+12 {
		return dst, false
	}
	if !r.limiter.allow(client) {
		return dst, false
	}
	// RFC 6840 §5.8, as fitAD on the slow path.
	if h := len(dst) + 3; out[h]&0x20 != 0 && raw[3]&0x20 == 0 && !wireDO(raw) {
		out[h] &^= 0x20
	}
	rcode := int(out[len(dst)+3] & 0x0f)
	r.metrics.response(srcCache, rcode)
	if r.qlog != nil {
		qname, _, _ := dns.UnpackDomainName(raw, 12)
		r.logQuery(q, qname, qtype, rcode, srcCache, time.Time{})
	}
	return out, true
}

// parseQuestion checks that raw is a plain query with one question, class IN,
// a type the cache may answer, and at most an EDNS version 0 OPT record. It
// writes the lower-cased wire-format name into name and its label offsets
// into offs, and returns their lengths and the type. It does not allocate.
func parseQuestion(raw []byte, name *[256]byte, offs *[128]uint8) (n, k int, qtype uint16, ok bool) {
	if len(raw) < 12+1+4 {
		return 0, 0, 0, false
	}
	// QR clear, OPCODE 0 (QUERY); QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
	if raw[2]&0xf8 != 0 || binary.BigEndian.Uint16(raw[4:]) != 1 ||
		binary.BigEndian.Uint16(raw[6:]) != 0 || binary.BigEndian.Uint16(raw[8:]) != 0 {
		return 0, 0, 0, false
	}
	arcount := binary.BigEndian.Uint16(raw[10:])
	if arcount > 1 {
		return 0, 0, 0, false
	}
	off := 12
	for {
		if off >= len(raw) {
			return 0, 0, 0, false
		}
		l := int(raw[off])
		if l == 0 {
			name[n] = 0
			n++
			off++
			break
		}
		// Compression pointers (0xc0) and extended label types: let ServeDNS
		// deal with them.
		if l > 63 || off+1+l > len(raw) || n+1+l+1 > 255 {
			return 0, 0, 0, false
		}
		offs[k] = uint8(n)
		k++
		name[n] = byte(l)
		for i, c := range raw[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			name[n+1+i] = c
		}
		n += 1 + l
		off += 1 + l
	}
	if off+4 > len(raw) {
		return 0, 0, 0, false
	}
	qtype = binary.BigEndian.Uint16(raw[off:])
	if binary.BigEndian.Uint16(raw[off+2:]) != dns.ClassINET {
		return 0, 0, 0, false
	}
	switch qtype {
	case 0, dns.TypeOPT, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB:
		return 0, 0, 0, false
	}
	off += 4
	if arcount == 1 {
		// The OPT record: root owner, TYPE 41, then CLASS (UDP size) and TTL
		// (extended RCODE, VERSION, flags); VERSION must be 0 (RFC 6891 §6.1.3).
		if off+11 > len(raw) || raw[off] != 0 ||
			binary.BigEndian.Uint16(raw[off+1:]) != dns.TypeOPT || raw[off+6] != 0 {
			return 0, 0, 0, false
		}
	}
	return n, k, qtype, true
}

// wireDO reports whether raw, a query parseQuestion accepted, has the DO bit
// set in its OPT record.
func wireDO(raw []byte) bool {
	if binary.BigEndian.Uint16(raw[10:]) == 0 {
		return false
	}
	off := 12
	for raw[off] != 0 {
		off += 1 + int(raw[off])
	}
	off += 1 + 4 // root label, QTYPE, QCLASS
	// OPT: owner (1), TYPE (2), CLASS (2), extended RCODE (1), VERSION (1), flags (2).
	return raw[off+7]&0x80 != 0
}

// wireNames returns the owner names of rrs in lower-case wire form, the form
// parseQuestion produces.
func wireNames(rrs []dns.RR) (map[string]struct{}, error) {
	names := make(map[string]struct{}, len(rrs))
	var buf [256]byte
	for _, rr := range rrs {
		n, err := dns.PackDomainName(dns.CanonicalName(rr.Header().Name), buf[:], 0, nil, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rr.Header().Name, err)
		}
		names[string(buf[:n])] = struct{}{}
	}
	return names, nil
}
