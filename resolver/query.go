package resolver

import (
	"context"
	"errors"
	"net/netip"

	"github.com/miekg/dns"
)

// Transport names the protocol a query arrived over. It is a small closed set so
// that it can label metrics without risk of cardinality growth.
type Transport uint8

const (
	UDP   Transport = iota + 1 // Do53 over UDP
	TCP                        // Do53 over TCP (RFC 7766)
	TLS                        // DoT (RFC 7858)
	HTTPS                      // DoH over HTTP/1.1 or HTTP/2 (RFC 8484)
	HTTP3                      // DoH over HTTP/3
	QUIC                       // DoQ (RFC 9250)
)

var transportNames = [...]string{UDP: "udp", TCP: "tcp", TLS: "tls", HTTPS: "https", HTTP3: "h3", QUIC: "quic"}

func (t Transport) String() string {
	if int(t) < len(transportNames) && transportNames[t] != "" {
		return transportNames[t]
	}
	return "unknown"
}

// Encrypted reports whether the transport is protected by TLS or QUIC; padding
// (RFC 8467) applies only to those.
func (t Transport) Encrypted() bool { return t >= TLS }

// Stream reports whether responses on this transport are never truncated.
func (t Transport) Stream() bool { return t != UDP }

// TLSInfo is what the policy may know of a client's TLS session. It is a copy of
// the few fields of tls.ConnectionState that matter to policy and to the layers
// view, so that the core request carries no transport object.
type TLSInfo struct {
	Version     uint16 // tls.VersionTLS13 …
	CipherSuite uint16
	ServerName  string // SNI; the inner SNI when ECH was accepted
	ALPN        string
	ECHAccepted bool
	Resumed     bool
}

// Query is one DNS request as a transport received it.
//
// A Query and everything it points to belong to the transport; handlers must not
// modify them and must not retain them after ServeDNS returns.
type Query struct {
	// Msg is the decoded request. It has exactly one question: transports answer
	// FORMERR themselves for anything else.
	Msg *dns.Msg

	// Client is the peer, after trusted-proxy unwrapping. Local is the address the
	// query arrived on.
	Client netip.AddrPort
	Local  netip.AddrPort

	Transport Transport

	// TLS is nil on cleartext transports.
	TLS *TLSInfo

	// Listener names the listener (its configured name or URL) for per-listener
	// policy such as ACLs.
	Listener string

	// MaxSize is the largest response the client accepts: its EDNS UDP size (at
	// least 512) over UDP, 65535 on stream transports. The transport truncates to
	// it; the policy may use it to pick what to include.
	MaxSize int
}

// Handler answers queries. It is the seam between transports and policy.
//
// ServeDNS returns the response; any RCODE is a response, not an error. An error
// means SERVFAIL, except ErrDrop (send nothing) and ErrRefused (REFUSED). The
// returned message belongs to the transport, which sets its ID, pads, truncates
// and writes it. ServeDNS must not modify q and must return soon after ctx is
// done. Handlers are safe for concurrent use.
type Handler interface {
	ServeDNS(ctx context.Context, q *Query) (*dns.Msg, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, q *Query) (*dns.Msg, error)

func (f HandlerFunc) ServeDNS(ctx context.Context, q *Query) (*dns.Msg, error) { return f(ctx, q) }

// WireHandler is an optional fast path a Handler may implement; transports look
// for it with a type assertion before decoding a message.
//
// ServeWire is given the raw query exactly as received and appends a complete
// raw response (with the query's ID) to dst. It returns ok=false when it cannot
// answer from the wire form alone (a cache miss, say); the transport then decodes
// the query and calls ServeDNS as usual, so ServeWire must have no side effects
// when it declines. The response must not exceed q.MaxSize: ServeWire declines
// rather than truncate. q.Msg is nil during ServeWire.
type WireHandler interface {
	ServeWire(q *Query, raw, dst []byte) (resp []byte, ok bool)
}

// Sentinel errors a Handler may return to ask the transport for a particular
// response. Wrap them to add detail; transports test with errors.Is.
var (
	// ErrDrop asks the transport to send no reply at all (rate limiting in drop
	// mode, amplification defence).
	ErrDrop = errors.New("resolver: drop query")
	// ErrRefused asks for a REFUSED response.
	ErrRefused = errors.New("resolver: query refused")
)

// Middleware wraps a Handler to add behaviour around it.
type Middleware func(next Handler) Handler

// Chain wraps h in mw, the first middleware outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
