package resolver

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// Error is a failure that carries the Extended DNS Error (RFC 8914) to put on
// the response. Handlers return it (possibly wrapped) so that a client learns why
// it got SERVFAIL or REFUSED.
type Error struct {
	Rcode int    // dns.RcodeServerFailure or dns.RcodeRefused; 0 means SERVFAIL
	Code  uint16 // EDE INFO-CODE, e.g. dns.ExtendedErrorCodeNoReachableAuthority
	Text  string // EXTRA-TEXT, short and free of client data
	Err   error  // the cause, for logs; never sent
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s (EDE %d", dns.RcodeToString[e.rcode()], e.Code)
	if e.Text != "" {
		msg += ": " + e.Text
	}
	msg += ")"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) rcode() int {
	if e.Rcode == 0 {
		return dns.RcodeServerFailure
	}
	return e.Rcode
}

// ErrorResponse builds the response for a handler error: nil for ErrDrop (send
// nothing), REFUSED for ErrRefused, otherwise SERVFAIL, with the EDE of the
// first *Error in err's chain when there is one.
func ErrorResponse(req *dns.Msg, err error) *dns.Msg {
	if errors.Is(err, ErrDrop) {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	var e *Error
	switch {
	case errors.As(err, &e):
		m.Rcode = e.rcode()
		SetEDE(m, req, e.Code, e.Text)
	case errors.Is(err, ErrRefused):
		m.Rcode = dns.RcodeRefused
		SetEDE(m, req, dns.ExtendedErrorCodeProhibited, "")
	default:
		m.Rcode = dns.RcodeServerFailure
	}
	return m
}

// SetEDE adds an Extended DNS Error option to m. RFC 8914 §3 lets it be sent
// only inside EDNS, so it is added only when req carried an OPT record.
func SetEDE(m, req *dns.Msg, code uint16, text string) {
	if req == nil || req.IsEdns0() == nil {
		return
	}
	opt := m.IsEdns0()
	if opt == nil {
		m.SetEdns0(DefaultUDPSize, req.IsEdns0().Do())
		opt = m.IsEdns0()
	}
	opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
}

// DefaultUDPSize is the EDNS UDP payload size Lamina advertises and uses upstream
// (DNS Flag Day 2020).
const DefaultUDPSize = 1232
