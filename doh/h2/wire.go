package h2

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/dnswire"
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
	off, rrs, valid := dnswire.SkipQuestions(wire)
	if !valid {
		return 0, false
	}
	for range rrs {
		typ, t, next, valid := dnswire.RR(wire, off)
		if !valid {
			return 0, false
		}
		off = next
		if typ != dns.TypeOPT && (!ok || t < ttl) {
			ttl, ok = t, true
		}
	}
	return ttl, ok
}
