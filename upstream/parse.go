package upstream

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Options configure an upstream. The zero value is usable: host sockets, a
// 2 s timeout, no logs, no metrics.
type Options struct {
	// Network is what the upstream dials through; nil means [System].
	Network Network

	// Timeout bounds one Exchange on this upstream (all its tries), on top of
	// the context's own deadline. 0 means 2 s.
	Timeout time.Duration

	// Tries is how many times a UDP query is sent, each on a fresh socket
	// with a fresh ID, splitting Timeout evenly between them. 0 means 2.
	// Stream transports send once (a lost segment is TCP's job).
	Tries int

	// UDPSocketUses is how many queries a UDP socket (and so its random
	// source port) serves, one at a time, before it is replaced; sockets
	// are also replaced after 5 s and after any failed try. 0 means 8; 1
	// means a fresh socket per query.
	UDPSocketUses int

	// MaxConns caps the connections a stream upstream keeps open to its
	// server, and MaxInFlight the queries pipelined on each. 0 means 2 and
	// 128.
	MaxConns, MaxInFlight int

	// IdleTimeout closes a stream connection with nothing in flight after
	// this long. 0 means 30 s. Servers often close sooner; that is handled
	// by retrying once on a fresh connection.
	IdleTimeout time.Duration

	// Logger receives lifecycle and degraded-state logs; nil discards them.
	Logger *slog.Logger

	// Metrics records exchanges under the upstream's URL; nil records
	// nothing.
	Metrics *Metrics

	// TLS settings of tls://, https://, h3:// and quic:// upstreams.
	// TLSConfig is cloned (nil: system roots); ServerName overrides the name
	// verified and sent as SNI (default: the URL's host, an IP literal
	// verifying the certificate's IP SANs); CAFile replaces the roots with
	// a PEM file; PinSHA256 additionally requires a certificate of the
	// chain to have one of these base64 SHA-256 SPKI digests ([SPKIPin]).
	TLSConfig  *tls.Config
	ServerName string
	CAFile     string
	PinSHA256  []string

	// ECHConfigList is the server's ECHConfigList; when empty and ECH is not
	// off it is looked up through Bootstrap (SVCB/HTTPS records). ECH picks
	// the policy; the zero value is opportunistic.
	ECHConfigList []byte
	ECH           ECHPolicy

	// A URL host that is a name is resolved through Bootstrap (plain DNS
	// upstreams, never the upstream itself; not closed by the upstream) and
	// re-resolved on TTL expiry, or replaced by the fixed IPs.
	Bootstrap Upstream
	IPs       []netip.Addr
}

func (o Options) withDefaults() Options {
	if o.Network == nil {
		o.Network = System()
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Tries <= 0 {
		o.Tries = 2
	}
	if o.UDPSocketUses <= 0 {
		o.UDPSocketUses = 8
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 2
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 128
	}
	if o.MaxInFlight > 4096 {
		o.MaxInFlight = 4096
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Parse builds the upstream a URL names:
//
//	udp://192.0.2.53[:53]           plain DNS over UDP, retried over TCP on TC
//	tcp://[2001:db8::53]:53         plain DNS over pipelined TCP
//	tls://dns.example[:853]         DNS over TLS (RFC 7858)
//	https://dns.example[:443]/path  DNS over HTTPS, h2 or HTTP/1.1 (RFC 8484)
//	h3://dns.example[:443]/path     DNS over HTTPS over HTTP/3
//	quic://dns.example[:853]        DNS over QUIC (RFC 9250)
//
// The host is an IP literal, or a hostname when Options has Bootstrap or
// IPs. The port defaults as shown; DoH paths
// default to /dns-query. Anything a scheme does not use (a path on tls://,
// user info, a fragment) is an error rather than silently ignored. The
// upstream's String is the URL in canonical form.
func Parse(rawURL string, opts Options) (Upstream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "https":
		return NewDoH(rawURL, opts)
	case "h3":
		return NewDoH3(rawURL, opts)
	case "udp", "tcp", "tls", "quic":
	case "":
		return nil, fmt.Errorf("upstream %q: missing scheme (udp, tcp, tls, https, h3, quic)", rawURL)
	default:
		return nil, fmt.Errorf("upstream %q: scheme %q: %w", rawURL, u.Scheme, ErrUnsupported)
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: only %s://host[:port] is allowed", rawURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("upstream %q: missing host", rawURL)
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, fmt.Errorf("upstream %q: empty port", rawURL)
		}
		port = map[string]string{"udp": "53", "tcp": "53", "tls": "853", "quic": "853"}[u.Scheme]
	}
	hp := net.JoinHostPort(u.Hostname(), port)
	switch u.Scheme {
	case "tls":
		return NewDoT(hp, opts)
	case "quic":
		return NewDoQ(hp, opts)
	}
	ep, err := endpointFor(hp, 53, opts)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "udp" {
		return newUDP(ep, opts), nil
	}
	opts = opts.withDefaults()
	url := "tcp://" + ep.hostPort()
	return newTCP(ep, opts, opts.Metrics.forUpstream(url), url), nil
}
