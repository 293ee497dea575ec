package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// DoT is DNS over TLS (RFC 7858): the pipelined stream machinery of [TCP]
// over TLS 1.2+ with ALPN "dot", session resumption, optional SPKI pins and
// ECH, and queries padded to 128-byte blocks (RFC 8467 §4.1).
type DoT struct {
	timeout time.Duration
	pool    *streamPool
	m       *upstreamMetrics
	url     string
}

var _ Upstream = (*DoT)(nil)

// paddingBlock is the block size queries on encrypted transports are padded
// to (RFC 8467 §4.1, Block-Length Padding, recommended 128).
const paddingBlock = 128

// NewDoT returns the DoT upstream at hostport ("host:port", host an IP
// literal or, with Options.Bootstrap or IPs, a name). It connects on the
// first Exchange.
func NewDoT(hostport string, opts Options) (*DoT, error) {
	opts = opts.withDefaults()
	ep, err := endpointFor(hostport, 853, opts)
	if err != nil {
		return nil, err
	}
	url := "tls://" + ep.hostPort()
	cfg, err := opts.tlsConfig(ep.host, []string{"dot"}, tls.VersionTLS12)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", url, err)
	}
	ech := newECHState(opts, discoverECH(opts.Bootstrap, echHost(ep, cfg)))
	network := opts.Network
	dial := func(ctx context.Context) (net.Conn, bool, error) {
		return echHandshake(ctx, ech, cfg, func(ctx context.Context, cfg *tls.Config) (net.Conn, error) {
			raw, err := ep.dial(ctx, network, "tcp")
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			return c, nil
		})
	}
	um := opts.Metrics.forUpstream(url)
	pool := newStreamPool(opts, um, opts.Logger.With("upstream", url), dial)
	pool.pad = paddingBlock
	return &DoT{timeout: opts.Timeout, pool: pool, m: um, url: url}, nil
}

// echHost is the name whose records may carry the server's ECH config: the
// TLS server name when it is a hostname.
func echHost(ep *endpoint, cfg *tls.Config) string {
	if _, ok := dns.IsDomainName(cfg.ServerName); ok && !isIP(cfg.ServerName) {
		return cfg.ServerName
	}
	if ep.hostname() {
		return ep.host
	}
	return ""
}

func isIP(s string) bool { return net.ParseIP(s) != nil }

// endpointFor splits "host[:port]" and builds its endpoint.
func endpointFor(hostport string, defPort uint16, opts Options) (*endpoint, error) {
	host, port := hostport, defPort
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("upstream %q: bad port %q", hostport, p)
		}
		host, port = h, uint16(n)
	}
	ep, err := newEndpoint(host, port, opts)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", hostport, err)
	}
	return ep, nil
}

// String returns the upstream's URL.
func (d *DoT) String() string { return d.url }

// Close closes the connections; later exchanges fail with net.ErrClosed.
func (d *DoT) Close() error { return d.pool.close() }

// Exchange sends req and returns the matching answer; see [Upstream].
func (d *DoT) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := d.exchange(ctx, req)
	d.m.exchange(start, resp, err)
	return resp, err
}

func (d *DoT) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	resp, err := d.pool.exchange(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("exchanging with %s: %w", d, err)
	}
	return resp, nil
}
