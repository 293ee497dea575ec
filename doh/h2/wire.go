package h2

import (
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// dnsParam finds the dns= parameter of a request target's query string.
// ok is false when there is none or it is empty.
func dnsParam(query string) (string, bool) {
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		if v, found := strings.CutPrefix(kv, "dns="); found {
			if strings.IndexByte(v, '%') >= 0 {
				u, err := url.QueryUnescape(v)
				if err != nil {
					return "", false
				}
				v = u
			}
			return v, v != ""
		}
	}
	return "", false
}

// decodeParam decodes a base64url dns parameter (RFC 8484 §4.1 sends it
// unpadded; some clients pad) into dst's array.
func decodeParam(dst []byte, v string) ([]byte, bool) {
	v = strings.TrimRight(v, "=")
	n := base64.RawURLEncoding.DecodedLen(len(v))
	if n > dns.MaxMsgSize {
		return nil, false
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Decode(dst[:n], []byte(v))
	return dst[:n], err == nil
}

// CacheControl is the Cache-Control value for a packed DoH answer, shared
// with package doh's HTTP/1.1, HTTP/3 and JSON paths: RFC 8484 §5.1,
// freshness no longer than the smallest TTL; error responses are not stored.
func CacheControl(wire []byte) string {
	switch wire[3] & 0xF {
	case dns.RcodeSuccess, dns.RcodeNameError:
		ttl, ok := MinTTL(wire)
		if !ok {
			return "max-age=0"
		}
		if ttl < uint32(len(maxAge)) {
			return maxAge[ttl]
		}
		return "max-age=" + strconv.FormatUint(uint64(ttl), 10)
	}
	return "no-store"
}

// maxAge holds the common Cache-Control values so the fast path does not
// allocate them.
var maxAge = func() (a [3601]string) {
	for i := range a {
		a[i] = "max-age=" + strconv.Itoa(i)
	}
	return a
}()

// MinTTL is the smallest TTL of a packed message's records, OPT excluded;
// ok is false when it has none or does not parse.
func MinTTL(wire []byte) (ttl uint32, ok bool) {
	if len(wire) < 12 {
		return 0, false
	}
	qd := int(binary.BigEndian.Uint16(wire[4:]))
	rrs := int(binary.BigEndian.Uint16(wire[6:])) + int(binary.BigEndian.Uint16(wire[8:])) + int(binary.BigEndian.Uint16(wire[10:]))
	off := 12
	for range qd {
		if off = skipName(wire, off); off < 0 || off+4 > len(wire) {
			return 0, false
		}
		off += 4
	}
	for range rrs {
		if off = skipName(wire, off); off < 0 || off+10 > len(wire) {
			return 0, false
		}
		typ := binary.BigEndian.Uint16(wire[off:])
		t := binary.BigEndian.Uint32(wire[off+4:])
		off += 10 + int(binary.BigEndian.Uint16(wire[off+8:]))
		if off > len(wire) {
			return 0, false
		}
		if typ != dns.TypeOPT && (!ok || t < ttl) {
			ttl, ok = t, true
		}
	}
	return ttl, ok
}

// skipName returns the offset after the possibly compressed name at off,
// or -1.
func skipName(wire []byte, off int) int {
	for n := 0; off < len(wire) && n < 128; n++ {
		switch l := wire[off]; {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			if off+2 > len(wire) {
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
