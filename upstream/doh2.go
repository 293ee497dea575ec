package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// h2Fallback speaks HTTP/2 and switches to HTTP/1.1 for good once the
// server's ALPN says it has no h2. HTTP/2 goes through x/net/http2 directly
// because its pool shares one dial between the requests that wait for it;
// net/http would start a TLS handshake per request in a burst until the
// first connection is up.
type h2Fallback struct {
	h2  *http2.Transport
	h1  *http.Transport
	use atomic.Bool // true: HTTP/1.1
}

var errNoH2 = errors.New("upstream: server does not offer HTTP/2")

func newH2Fallback(o Options, ep *endpoint, cfg *tls.Config, ech *echState, um *upstreamMetrics) *h2Fallback {
	f := &h2Fallback{}
	dial := func(ctx context.Context, wantH2 bool) (net.Conn, error) {
		c, usedECH, err := echHandshake(ctx, ech, cfg, func(ctx context.Context, cfg *tls.Config) (*tls.Conn, error) {
			raw, err := ep.dial(ctx, o.Network, "tcp")
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
		if err != nil {
			return nil, err
		}
		um.conn(usedECH)
		if wantH2 && c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
			f.use.Store(true)
			c.Close()
			return nil, errNoH2
		}
		return c, nil
	}
	f.h2 = &http2.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx, true)
		},
		DisableCompression: true,
		IdleConnTimeout:    o.IdleTimeout,
		// Notice a dead connection by a PING instead of waiting for TCP.
		ReadIdleTimeout: 15 * time.Second,
		PingTimeout:     5 * time.Second,
	}
	f.h1 = &http.Transport{
		DialTLSContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, false) },
		MaxConnsPerHost:        16, // HTTP/1.1 has one query in flight per connection
		MaxIdleConnsPerHost:    16,
		IdleConnTimeout:        o.IdleTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
	}
	return f
}

func (f *h2Fallback) RoundTrip(req *http.Request) (*http.Response, error) {
	if !f.use.Load() {
		resp, err := f.h2.RoundTrip(req)
		if err == nil || !f.use.Load() {
			return resp, err
		}
		// The dial found an HTTP/1.1-only server: the body was not sent.
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
	return f.h1.RoundTrip(req)
}

func (f *h2Fallback) close() {
	f.h2.CloseIdleConnections()
	f.h1.CloseIdleConnections()
}
