package do53

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// ErrMalformed reports bytes that must not be answered at all: shorter than a
// DNS header, or a response (QR set) that any reply could be used to reflect
// and amplify.
var ErrMalformed = errors.New("do53: malformed query")

const headerLen = 12

// ParseQuery decodes raw, a query as received on any transport, and decides
// whether a Handler may see it. Three outcomes:
//
//   - err != nil (always [ErrMalformed]): send nothing; count it.
//   - resp != nil: answer resp (through [Reply]) without calling the Handler:
//     FORMERR for bytes that do not decode, several OPT records or not exactly
//     one question (RFC 1035 §4.1.1, RFC 6891 §6.1.1); NOTIMP for an opcode
//     other than QUERY; BADVERS for an EDNS version above 0 (RFC 6891
//     §6.1.3). req is nil when only the header could be read.
//   - otherwise req is a query with one question, ready for the Handler.
func ParseQuery(raw []byte) (req, resp *dns.Msg, err error) {
	if len(raw) < headerLen || raw[2]&0x80 != 0 {
		return nil, nil, ErrMalformed
	}
	req = new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		return nil, headerFormErr(raw), nil
	}
	opts := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	switch {
	case opts > 1 || len(req.Question) != 1:
		return req, answer(req, dns.RcodeFormatError), nil
	case req.Opcode != dns.OpcodeQuery:
		return req, answer(req, dns.RcodeNotImplemented), nil
	case opts == 1 && req.IsEdns0().Version() != 0:
		return req, answer(req, dns.RcodeBadVers), nil
	}
	return req, nil, nil
}

func answer(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	if o := req.IsEdns0(); o != nil {
		// Reply rewrites it; its presence lets an extended RCODE pack.
		m.SetEdns0(resolver.DefaultUDPSize, o.Do())
	}
	return m
}

// headerFormErr is the FORMERR for a message whose header is all that could be
// read: ID, opcode and RD echoed, no sections.
func headerFormErr(raw []byte) *dns.Msg {
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(raw)
	m.Response = true
	m.Opcode = int(raw[2]>>3) & 0xF
	m.RecursionDesired = raw[2]&0x01 != 0
	m.CheckingDisabled = raw[3]&0x10 != 0
	m.Rcode = dns.RcodeFormatError
	return m
}

// MaxSize is the largest response a client that sent req over t accepts:
// 65535 on stream transports; over UDP its EDNS UDP payload size, at least
// 512 (RFC 6891 §6.2.5) and at most [resolver.DefaultUDPSize], so that
// answers are never IP-fragmented (DNS Flag Day 2020) and large ones go over
// TCP instead.
func MaxSize(req *dns.Msg, t resolver.Transport) int {
	if t.Stream() {
		return dns.MaxMsgSize
	}
	if req == nil {
		return dns.MinMsgSize
	}
	if o := req.IsEdns0(); o != nil {
		return udpLimit(o.UDPSize())
	}
	return dns.MinMsgSize
}

func udpLimit(size uint16) int {
	return min(max(int(size), dns.MinMsgSize), resolver.DefaultUDPSize)
}

// wireInfo is what the fast path learns from a raw query without decoding it.
type wireInfo struct {
	qtype     uint16
	edns      bool
	udpSize   uint16
	keepalive bool // edns-tcp-keepalive option present
	padding   bool // Padding option present
}

// maxSize is MaxSize for a scanned query.
func (w *wireInfo) maxSize(t resolver.Transport) int {
	switch {
	case t.Stream():
		return dns.MaxMsgSize
	case w.edns:
		return udpLimit(w.udpSize)
	}
	return dns.MinMsgSize
}

// scanQuery checks, without allocating, that raw is a plain query the fast
// path may take: QR clear, opcode QUERY, one question with an uncompressed
// name, no answer or authority records, at most an OPT record of version 0 in
// the additional section, and nothing after it. Anything else returns false
// and takes the slow path, which decodes and judges it fully.
func scanQuery(raw []byte) (w wireInfo, ok bool) {
	if len(raw) < headerLen || raw[2]&0xF8 != 0 { // QR and opcode
		return w, false
	}
	if binary.BigEndian.Uint16(raw[4:]) != 1 || binary.BigEndian.Uint32(raw[6:]) != 0 {
		return w, false
	}
	ar := binary.BigEndian.Uint16(raw[10:])
	if ar > 1 {
		return w, false
	}
	off, nameLen := headerLen, 1
	for {
		if off >= len(raw) {
			return w, false
		}
		l := int(raw[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return w, false // compression pointer or reserved label type
		}
		nameLen += l + 1
		off += l + 1
		if nameLen > 255 {
			return w, false
		}
	}
	if off+4 > len(raw) {
		return w, false
	}
	w.qtype = binary.BigEndian.Uint16(raw[off:])
	off += 4
	if ar == 0 {
		return w, off == len(raw)
	}
	// OPT: root name, type 41, class = UDP size, TTL = ext-rcode, version, flags.
	if off+11 > len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != dns.TypeOPT || raw[off+6] != 0 {
		return w, false
	}
	w.edns = true
	w.udpSize = binary.BigEndian.Uint16(raw[off+3:])
	rdlen := int(binary.BigEndian.Uint16(raw[off+9:]))
	off += 11
	if off+rdlen != len(raw) {
		return w, false
	}
	for off < len(raw) {
		if off+4 > len(raw) {
			return w, false
		}
		code := binary.BigEndian.Uint16(raw[off:])
		olen := int(binary.BigEndian.Uint16(raw[off+2:]))
		off += 4 + olen
		if off > len(raw) {
			return w, false
		}
		switch code {
		case dns.EDNS0TCPKEEPALIVE:
			w.keepalive = true
		case dns.EDNS0PADDING:
			w.padding = true
		}
	}
	return w, true
}

// HasKeepalive reports whether raw, a query, carries the edns-tcp-keepalive
// option (RFC 7828), which RFC 9250 §5.5.2 forbids on DoQ, where it is a
// protocol error. The scan does not allocate for plain queries; anything
// unusual is decoded.
func HasKeepalive(raw []byte) bool {
	if w, ok := scanQuery(raw); ok {
		return w.keepalive
	}
	m := new(dns.Msg)
	if m.Unpack(raw) != nil {
		return false
	}
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if o.Option() == dns.EDNS0TCPKEEPALIVE {
				return true
			}
		}
	}
	return false
}
