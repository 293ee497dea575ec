package upstream

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// maxMsgSize is the largest DNS message on any transport (a 2-byte length).
const maxMsgSize = 65535

// bufPool holds read buffers big enough for any DNS message. miekg/dns copies
// every slice it unpacks, so a buffer can go back to the pool right after
// Unpack.
var bufPool = sync.Pool{New: func() any { b := make([]byte, maxMsgSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// randID returns an unpredictable message ID (RFC 5452 §9.2): crypto/rand,
// not a PRNG, since an off-path attacker who guesses IDs can poison answers.
func randID() uint16 {
	var b [2]byte
	rand.Read(b[:]) // never fails since Go 1.24
	return binary.BigEndian.Uint16(b[:])
}

// packQuery encodes req with the given ID and, when pad > 0, an EDNS(0)
// padding option that rounds the message up to a multiple of pad bytes
// (RFC 8467 §4.1). It never writes to req: miekg/dns's Pack stores the
// extended RCODE into the OPT record, so the header and the OPT record are
// copied (shallowly, a few words) and the rest is shared read-only.
func packQuery(req *dns.Msg, id uint16, pad int, buf []byte) ([]byte, error) {
	m := *req
	m.Id = id
	m.Compress = false
	if len(req.Extra) > 0 || pad > 0 {
		extra := make([]dns.RR, len(req.Extra), len(req.Extra)+1)
		var opt *dns.OPT
		for i, rr := range req.Extra {
			if o, ok := rr.(*dns.OPT); ok && opt == nil {
				c := *o
				opt = &c
				rr = opt
			}
			extra[i] = rr
		}
		m.Extra = extra
		if pad > 0 {
			if opt == nil {
				// Padding needs EDNS; add the OPT a stub would (RFC 6891).
				opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}}
				m.Extra = append(m.Extra, opt)
			}
			// Drop any padding the client sent and pad afresh.
			opts := make([]dns.EDNS0, 0, len(opt.Option)+1)
			for _, o := range opt.Option {
				if o.Option() != dns.EDNS0PADDING {
					opts = append(opts, o)
				}
			}
			opt.Option = opts
			n := m.Len() + 4 // + option code and length
			p := &dns.EDNS0_PADDING{Padding: make([]byte, (pad-n%pad)%pad)}
			opt.Option = append(opt.Option, p)
		}
	}
	return m.PackBuffer(buf)
}

// dropReason says why a received message was not taken as the answer; it is
// the reason label of lamina_upstream_dropped_responses_total.
type dropReason string

const (
	dropMalformed  dropReason = "malformed"    // does not parse
	dropID         dropReason = "id"           // another query's ID (UDP)
	dropUnknownID  dropReason = "unknown_id"   // no query waits for this ID (streams)
	dropNotResp    dropReason = "not_response" // QR bit clear
	dropQuestion   dropReason = "question"     // ID matches, question does not
	dropOversized  dropReason = "oversized"    // longer than the transport allows
	dropBadContent dropReason = "bad_content"  // wrong content type or HTTP status (DoH)
)

// checkResponse decides whether resp answers req (RFC 5452 §9.1): the QR bit
// set and the same question, the name compared case-insensitively (RFC 4343)
// because servers may echo it with 0x20 changes. The ID is checked by the
// caller, which knows the ID it put on the wire.
func checkResponse(req, resp *dns.Msg) (dropReason, bool) {
	if !resp.Response {
		return dropNotResp, false
	}
	if len(resp.Question) != len(req.Question) {
		return dropQuestion, false
	}
	for i, q := range req.Question {
		r := resp.Question[i]
		if r.Qtype != q.Qtype || r.Qclass != q.Qclass || !strings.EqualFold(r.Name, q.Name) {
			return dropQuestion, false
		}
	}
	return "", true
}

// unpackResponse parses raw as an answer to req sent with ID wantID. On
// success the response carries req's ID, so callers never see the wire ID.
func unpackResponse(req *dns.Msg, raw []byte, wantID uint16) (*dns.Msg, dropReason) {
	if len(raw) < 12 {
		return nil, dropMalformed
	}
	if binary.BigEndian.Uint16(raw) != wantID {
		return nil, dropID
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(raw); err != nil {
		return nil, dropMalformed
	}
	if why, ok := checkResponse(req, resp); !ok {
		return nil, why
	}
	resp.Id = req.Id
	return resp, ""
}
