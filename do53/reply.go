package do53

import (
	"errors"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// paddingBlock is the response block size RFC 8467 §4.1 recommends.
const paddingBlock = 468

// zeros backs EDNS padding options; it is never written.
var zeros [paddingBlock]byte

// errNoResponse stands for a Handler that returned neither a message nor an
// error: a bug, answered SERVFAIL rather than leaving the client to time out.
var errNoResponse = errors.New("do53: handler returned no response")

// Reply turns a Handler's result into the wire response for q, packed into
// buf[:cap(buf)] when it fits (buf may be nil). It is the one place every transport (Do53,
// DoT, DoH, DoQ) finishes a response, so that all of them answer alike:
//
//   - err is mapped with [resolver.ErrorResponse]; ok=false means send nothing
//     (ErrDrop). A nil resp with a nil err is answered SERVFAIL.
//   - the ID, RD and CD bits and the question are copied from the query.
//   - EDNS (RFC 6891 §7): an OPT record only when the query had one, with
//     [resolver.DefaultUDPSize], version 0 and the query's DO bit; of the
//     handler's options only Extended DNS Errors survive, and Client Subnet
//     when the client sent one. Upstream cookies, padding, NSID and the like
//     never reach the client.
//   - RFC 7828: on TCP and DoT, a query carrying edns-tcp-keepalive gets the
//     server's idle timeout back ([DefaultIdleTimeout] here; [StreamServer]
//     answers with its own).
//   - RFC 8467: on encrypted transports, a response to a query that carried a
//     Padding option is padded to a multiple of 468 bytes, never beyond
//     q.MaxSize.
//   - a response larger than q.MaxSize is truncated at an RRset boundary with
//     TC set (RFC 2181 §9); over UDP the client then retries over TCP.
//
// Reply takes ownership of resp and modifies it. q.Msg may be nil for a
// response built from a bare header (see [ParseQuery]); resp is then packed as
// it is.
func Reply(q *resolver.Query, resp *dns.Msg, err error, buf []byte) ([]byte, bool) {
	return reply(q, resp, err, buf, DefaultIdleTimeout)
}

// reply is Reply with the keepalive timeout a stream listener advertises.
func reply(q *resolver.Query, resp *dns.Msg, err error, buf []byte, idle time.Duration) ([]byte, bool) {
	req := q.Msg
	if err == nil && resp == nil {
		err = errNoResponse
	}
	if err != nil {
		if req == nil {
			return nil, false
		}
		if resp = resolver.ErrorResponse(req, err); resp == nil {
			return nil, false
		}
	}
	maxSize := q.MaxSize
	if maxSize <= 0 {
		maxSize = MaxSize(req, q.Transport)
	}
	padded := false
	if req != nil {
		resp.Id = req.Id
		resp.Response = true
		resp.Opcode = req.Opcode
		resp.RecursionDesired = req.RecursionDesired
		resp.CheckingDisabled = req.CheckingDisabled
		if len(req.Question) == 1 {
			resp.Question = req.Question
		}
		padded = setEDNS(req, resp, q.Transport, idle)
	}
	buf = buf[:cap(buf)] // PackBuffer packs in place only when len(buf) suffices
	resp.Compress = true
	wire, perr := resp.PackBuffer(buf)
	if perr != nil {
		return packServFail(req, resp, buf)
	}
	if len(wire) > maxSize {
		truncate(resp, maxSize)
		resp.Compress = true
		if wire, perr = resp.PackBuffer(buf); perr != nil {
			return packServFail(req, resp, buf)
		}
	}
	if padded {
		wire = pad(resp, wire, maxSize, buf)
	}
	return wire, true
}

// packServFail answers SERVFAIL when the handler's response cannot be packed
// (an extended RCODE without OPT, an RR that fails to pack).
func packServFail(req, resp *dns.Msg, buf []byte) ([]byte, bool) {
	m := new(dns.Msg)
	if req != nil {
		m.SetRcode(req, dns.RcodeServerFailure)
		m.RecursionAvailable = true
		if o := req.IsEdns0(); o != nil {
			m.SetEdns0(resolver.DefaultUDPSize, o.Do())
		}
	} else {
		m.Id, m.Response, m.Rcode = resp.Id, true, dns.RcodeServerFailure
	}
	wire, err := m.PackBuffer(buf)
	return wire, err == nil
}

// setEDNS rewrites resp's OPT record for the client that sent req and reports
// whether the response must be padded (RFC 8467).
func setEDNS(req, resp *dns.Msg, t resolver.Transport, idle time.Duration) (pad bool) {
	var kept []dns.EDNS0
	for i := 0; i < len(resp.Extra); {
		opt, ok := resp.Extra[i].(*dns.OPT)
		if !ok {
			i++
			continue
		}
		kept = append(kept, opt.Option...)
		resp.Extra = append(resp.Extra[:i], resp.Extra[i+1:]...)
	}
	qopt := req.IsEdns0()
	if qopt == nil {
		// RFC 6891 §7: no OPT in the request, none in the response. An
		// extended RCODE cannot be expressed without it.
		if resp.Rcode > 0xF {
			resp.Rcode = dns.RcodeServerFailure
		}
		return false
	}
	var clientSubnet, keepalive bool
	for _, o := range qopt.Option {
		switch o.Option() {
		case dns.EDNS0SUBNET:
			clientSubnet = true
		case dns.EDNS0TCPKEEPALIVE:
			keepalive = true
		case dns.EDNS0PADDING:
			pad = t.Encrypted()
		}
	}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: resolver.DefaultUDPSize}}
	opt.SetDo(qopt.Do())
	for _, o := range kept {
		switch o.Option() {
		case dns.EDNS0EDE:
			opt.Option = append(opt.Option, o)
		case dns.EDNS0SUBNET:
			if clientSubnet {
				opt.Option = append(opt.Option, o)
			}
		}
	}
	// RFC 7828 §3.3.2 and RFC 9250 §5.5.2: only TCP and DoT speak keepalive.
	if keepalive && (t == resolver.TCP || t == resolver.TLS) {
		if units := idle / (100 * time.Millisecond); units > 0 {
			opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: uint16(min(units, 0xFFFF))})
		}
	}
	resp.Extra = append(resp.Extra, opt)
	return pad
}

// pad adds an RFC 7830 Padding option so that the response is a multiple of
// paddingBlock bytes, or as long as maxSize allows. The option adds exactly
// 4+n bytes because OPT is never compressed.
func pad(resp *dns.Msg, wire []byte, maxSize int, buf []byte) []byte {
	opt := resp.IsEdns0()
	if opt == nil {
		return wire
	}
	l := len(wire) + 4
	n := (paddingBlock - l%paddingBlock) % paddingBlock
	if l+n > maxSize {
		n = maxSize - l
	}
	if n < 0 {
		return wire
	}
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: zeros[:n]})
	padded, err := resp.PackBuffer(buf)
	if err != nil {
		return wire
	}
	return padded
}

// truncate makes resp fit size. Records are cut only at RRset boundaries (RFC
// 2181 §9: a partial RRset is never sent) and TC is set only when the answer
// or authority section lost records, not for omitted additional data.
func truncate(resp *dns.Msg, size int) {
	ans, ns := resp.Answer, resp.Ns
	// Truncate shifts the OPT record within Extra's array: copy first.
	var origPlain []dns.RR
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			origPlain = append(origPlain, rr)
		}
	}
	tc := resp.Truncated
	resp.Truncate(size)
	cutAns := len(resp.Answer) < len(ans)
	cutNs := len(resp.Ns) < len(ns)
	resp.Answer = wholeRRsets(resp.Answer, ans)
	resp.Ns = wholeRRsets(resp.Ns, ns)
	if cutAns || cutNs {
		// The client retries over TCP and ignores this response; anything
		// after the cut is noise.
		if cutAns {
			resp.Ns = nil
		}
		keepOPT(resp)
		resp.Truncated = true
		return
	}
	// Only additional data was dropped: keep whole RRsets and the OPT.
	var opt dns.RR
	if o := resp.IsEdns0(); o != nil {
		opt = o
	}
	var plain []dns.RR
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			plain = append(plain, rr)
		}
	}
	resp.Extra = wholeRRsets(plain, origPlain)
	if opt != nil {
		resp.Extra = append(resp.Extra, opt)
	}
	resp.Truncated = tc
}

// keepOPT drops the additional section except the OPT record.
func keepOPT(resp *dns.Msg) {
	if o := resp.IsEdns0(); o != nil {
		resp.Extra = []dns.RR{o}
	} else {
		resp.Extra = nil
	}
}

// wholeRRsets shortens kept, a prefix of orig, so that it does not end in part
// of an RRset that continues in orig.
func wholeRRsets(kept, orig []dns.RR) []dns.RR {
	n := len(kept)
	if n == 0 || n >= len(orig) {
		return kept
	}
	next := orig[n].Header()
	for n > 0 {
		h := kept[n-1].Header()
		if h.Rrtype != next.Rrtype || h.Class != next.Class || !strings.EqualFold(h.Name, next.Name) {
			break
		}
		n--
	}
	return kept[:n]
}
