package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// TCP is a plain DNS server over TCP (RFC 7766) with reused, pipelined
// connections: many queries in flight on one connection, answers matched by
// ID in any order, a reconnect when the server closes it.
type TCP struct {
	timeout time.Duration
	pool    *streamPool
	m       *upstreamMetrics
	url     string
}

var _ Upstream = (*TCP)(nil)

// NewTCP returns the TCP upstream at addr. It connects on the first
// Exchange.
func NewTCP(addr netip.AddrPort, opts Options) *TCP {
	opts = opts.withDefaults()
	ep := fixedEndpoint(addr)
	url := "tcp://" + ep.hostPort()
	return newTCP(ep, opts, opts.Metrics.forUpstream(url), url)
}

// newTCP builds a TCP upstream whose drops are counted on um (the UDP
// upstream's, for its TC fallback).
func newTCP(ep *endpoint, opts Options, um *upstreamMetrics, url string) *TCP {
	log := opts.Logger.With("upstream", url)
	network := opts.Network
	dial := func(ctx context.Context) (net.Conn, bool, error) {
		c, err := ep.dial(ctx, network, "tcp")
		return c, false, err
	}
	return &TCP{
		timeout: opts.Timeout,
		pool:    newStreamPool(opts, um, log, dial),
		m:       um,
		url:     url,
	}
}

// String returns the upstream's URL.
func (t *TCP) String() string { return t.url }

// Close closes the connections; exchanges in flight and later ones fail with
// an error wrapping net.ErrClosed.
func (t *TCP) Close() error { return t.pool.close() }

// Exchange sends req and returns the matching answer; see [Upstream].
func (t *TCP) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := t.exchange(ctx, req)
	t.m.exchange(start, resp, err)
	return resp, err
}

func (t *TCP) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	resp, err := t.pool.exchange(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("exchanging with %s: %w", t, err)
	}
	return resp, nil
}
