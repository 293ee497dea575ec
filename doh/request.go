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
