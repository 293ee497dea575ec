package do53

import (
	"encoding/binary"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/dnswire"
	"github.com/laminadns/lamina/resolver"
)

// The fast path's EDNS work on a packed response, byte for byte what Reply
// does on a decoded one: the keepalive option on TCP and DoT (RFC 7828),
// then padding on encrypted transports (RFC 8467). Both edit the OPT record
// that ends the answer; the fast path's answers (the cache's) always end
// with it. An answer that does not is declined, and the slow path answers.

// finishWire applies the EDNS work a query's options ask for to resp, on
// transport t; idle is what a stream listener advertises.
func finishWire(resp []byte, info *wireInfo, t resolver.Transport, idle time.Duration, maxSize int) ([]byte, bool) {
	ok := true
	if info.keepalive && (t == resolver.TCP || t == resolver.TLS) {
		resp, ok = keepaliveWire(resp, idle, maxSize)
	}
	if ok && info.padding && t.Encrypted() {
		resp, ok = padWire(resp, maxSize)
	}
	return resp, ok
}

// keepaliveWire adds the edns-tcp-keepalive option with idle, in units of
// 100 ms, as Reply does; no option when idle is under 100 ms.
func keepaliveWire(msg []byte, idle time.Duration, maxSize int) ([]byte, bool) {
	opt, ok := lastOPT(msg)
	if !ok || optHas(msg, opt, dns.EDNS0TCPKEEPALIVE) || optHas(msg, opt, dns.EDNS0PADDING) {
		return msg, false
	}
	units := idle / (100 * time.Millisecond)
	if units <= 0 {
		return msg, true
	}
	if len(msg)+6 > maxSize {
		return msg, false
	}
	t := uint16(min(units, 0xFFFF))
	return appendOption(msg, opt, dns.EDNS0TCPKEEPALIVE, byte(t>>8), byte(t)), true
}

// padWire adds a Padding option so that msg becomes a multiple of
// paddingBlock bytes, or as long as maxSize allows, and leaves msg as it is
// when even the option's header does not fit, as pad does. It declines,
// msg untouched, when msg does not end with an OPT record or already pads.
func padWire(msg []byte, maxSize int) ([]byte, bool) {
	opt, ok := lastOPT(msg)
	if !ok || optHas(msg, opt, dns.EDNS0PADDING) {
		return msg, false
	}
	l := len(msg) + 4
	n := (paddingBlock - l%paddingBlock) % paddingBlock
	if l+n > maxSize {
		n = maxSize - l
	}
	if n < 0 {
		return msg, true
	}
	if int(binary.BigEndian.Uint16(msg[opt+9:]))+4+n > 0xffff {
		return msg, false
	}
	return appendOption(msg, opt, dns.EDNS0PADDING, zeros[:n]...), true
}

// lastOPT returns the offset of the OPT record that ends msg, a response,
// its options well-formed.
func lastOPT(msg []byte) (int, bool) {
	off, rrs, ok := dnswire.SkipQuestions(msg)
	if !ok || binary.BigEndian.Uint16(msg[10:]) == 0 {
		return 0, false
	}
	for range rrs - 1 {
		if _, _, off, ok = dnswire.RR(msg, off); !ok {
			return 0, false
		}
	}
	// Root owner, TYPE OPT, CLASS, TTL, RDLENGTH, then the options.
	if off+11 > len(msg) || msg[off] != 0 || binary.BigEndian.Uint16(msg[off+1:]) != dns.TypeOPT ||
		off+11+int(binary.BigEndian.Uint16(msg[off+9:])) != len(msg) {
		return 0, false
	}
	for o := off + 11; o < len(msg); {
		if o+4 > len(msg) {
			return 0, false
		}
		o += 4 + int(binary.BigEndian.Uint16(msg[o+2:]))
		if o > len(msg) {
			return 0, false
		}
	}
	return off, true
}

// optHas reports whether the OPT record at opt (checked by lastOPT) holds
// an option with code.
func optHas(msg []byte, opt int, code uint16) bool {
	for o := opt + 11; o < len(msg); o += 4 + int(binary.BigEndian.Uint16(msg[o+2:])) {
		if binary.BigEndian.Uint16(msg[o:]) == code {
			return true
		}
	}
	return false
}

// appendOption appends an option to the OPT record at opt, which ends msg.
func appendOption(msg []byte, opt int, code uint16, data ...byte) []byte {
	binary.BigEndian.PutUint16(msg[opt+9:], binary.BigEndian.Uint16(msg[opt+9:])+4+uint16(len(data)))
	msg = binary.BigEndian.AppendUint16(msg, code)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(data)))
	return append(msg, data...)
}
