package doh

import (
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/miekg/dns"
)

const (
	mimeDNSMessage = "application/dns-message"
	mimeDNSJSON    = "application/dns-json"
	mimeJSON       = "application/json"
)

// requestError is a request that gets an HTTP error status instead of a DNS
// answer.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(status int, msg string) error { return &requestError{status, msg} }

// readQuery extracts the DNS message of an RFC 8484 request (§4.1): GET with
// ?dns= or POST with an application/dns-message body of at most 65535 bytes.
// The body is read through http.MaxBytesReader so a huge upload costs at most
// that much.
func readQuery(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		v := r.URL.Query().Get("dns")
		if v == "" {
			return nil, badRequest(http.StatusBadRequest, "missing dns parameter")
		}
		if len(v) > base64.RawURLEncoding.EncodedLen(dns.MaxMsgSize)+2 {
			return nil, badRequest(http.StatusRequestURITooLong, "dns parameter too long")
		}
		// RFC 8484 §4.1 sends base64url without padding; some clients pad.
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
		if err != nil {
			return nil, badRequest(http.StatusBadRequest, "dns parameter is not base64url")
		}
		return raw, nil
	case http.MethodPost:
		ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || ct != mimeDNSMessage {
			return nil, badRequest(http.StatusUnsupportedMediaType, "content type must be "+mimeDNSMessage)
		}
		if r.ContentLength > dns.MaxMsgSize {
			return nil, badRequest(http.StatusRequestEntityTooLarge, "body larger than 65535 bytes")
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, dns.MaxMsgSize))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, badRequest(http.StatusRequestEntityTooLarge, "body larger than 65535 bytes")
		case err != nil:
			return nil, badRequest(http.StatusBadRequest, "reading body failed")
		case len(raw) == 0:
			return nil, badRequest(http.StatusBadRequest, "empty body")
		}
		return raw, nil
	}
	return nil, badRequest(http.StatusMethodNotAllowed, "method not allowed")
}

// wantsJSON reports a JSON API request: ?name= without ?dns=, or an Accept
// header asking for application/dns-json.
func wantsJSON(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	q := r.URL.Query()
	if q.Has("dns") {
		return false
	}
	return q.Has("name") || strings.Contains(r.Header.Get("Accept"), mimeDNSJSON)
}

// minTTL scans a packed response for the smallest TTL of its records (OPT
// excluded), for Cache-Control (RFC 8484 §5.1). ok is false when the message
// has no records or does not parse.
func minTTL(wire []byte) (ttl uint32, ok bool) {
	if len(wire) < 12 {
		return 0, false
	}
	qd := int(wire[4])<<8 | int(wire[5])
	rrs := int(wire[6])<<8 | int(wire[7]) + int(wire[8])<<8 | int(wire[9]) + int(wire[10])<<8 | int(wire[11])
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
		typ := uint16(wire[off])<<8 | uint16(wire[off+1])
		t := uint32(wire[off+4])<<24 | uint32(wire[off+5])<<16 | uint32(wire[off+6])<<8 | uint32(wire[off+7])
		rdlen := int(wire[off+8])<<8 | int(wire[off+9])
		off += 10 + rdlen
		if off > len(wire) {
			return 0, false
		}
		if typ == dns.TypeOPT {
			continue
		}
		if !ok || t < ttl {
			ttl, ok = t, true
		}
	}
	return ttl, ok
}

// skipName returns the offset after the (possibly compressed) name at off,
// or -1; it only walks the labels, since minTTL needs no names.
func skipName(wire []byte, off int) int {
	for n := 0; off < len(wire) && n < 128; n++ {
		switch l := wire[off]; {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0: // a pointer ends the name in this position
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
