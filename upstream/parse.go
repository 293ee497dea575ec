package upstream

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
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
//	udp://192.0.2.53[:53]   plain DNS over UDP, retried over TCP on TC
//	tcp://[2001:db8::53]:53 plain DNS over pipelined TCP
//
// The host must be an IP literal; the port defaults to 53. The URL may carry
// no path, query, fragment or user info, so a typo is an error rather than
// silently ignored. The upstream's String is the URL in canonical form.
func Parse(rawURL string, opts Options) (Upstream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "udp", "tcp":
	case "":
		return nil, fmt.Errorf("upstream %q: missing scheme (udp://, tcp://)", rawURL)
	default:
		return nil, fmt.Errorf("upstream %q: scheme %q: %w", rawURL, u.Scheme, ErrUnsupported)
	}
	if u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream %q: only %s://host[:port] is allowed", rawURL, u.Scheme)
	}
	addr, err := hostPort(u, 53)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "udp":
		return NewUDP(addr, opts), nil
	default:
		return NewTCP(addr, opts), nil
	}
}

// hostPort extracts an IP literal and port from u, applying defPort.
func hostPort(u *url.URL, defPort uint16) (netip.AddrPort, error) {
	host := u.Hostname()
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("missing host")
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address (hostnames need a bootstrap)", host)
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("host %q: zoned addresses are not supported", host)
	}
	port := defPort
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("bad port %q", p)
		}
		port = uint16(n)
	} else if _, _, err := net.SplitHostPort(u.Host); err == nil {
		return netip.AddrPort{}, fmt.Errorf("empty port")
	}
	return netip.AddrPortFrom(ip.Unmap(), port), nil
}
