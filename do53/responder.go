package do53

import (
	"context"
	"time"

	"github.com/laminadns/lamina/resolver"
)

// Responder answers single raw queries for transports that frame messages
// themselves, such as DoH (RFC 8484) and DoQ (RFC 9250), with exactly the
// behaviour of the Do53 and DoT servers: the WireHandler fast path, FORMERR,
// NOTIMP and BADVERS for bad queries, the Handler under Config.QueryTimeout
// with panics answered SERVFAIL, Reply, and Metrics. Config.MaxInFlight is
// not used: bounding concurrency is the caller's (HTTP/2 and QUIC stream
// limits). A Responder is safe for concurrent use.
type Responder struct {
	cfg  Config
	wire resolver.WireHandler
}

// NewResponder checks cfg and returns a Responder; cfg is copied.
func NewResponder(cfg Config) (*Responder, error) {
	if err := cfg.validate(1); err != nil {
		return nil, err
	}
	return &Responder{cfg: cfg, wire: cfg.wireHandler()}, nil
}

// Respond answers raw, one query as received. q carries the connection facts
// (Client, Local, Transport, TLS; Listener defaults to Config.Listener);
// Respond sets q.Msg and q.MaxSize. The response is built in buf's array
// when it fits.
//
// err is ErrMalformed when raw is not a query at all (DoH answers 400) and
// resolver.ErrDrop when the policy wants no answer sent; both are counted.
// The query runs under ctx (the HTTP request's or stream's context) bounded
// by Config.QueryTimeout.
func (r *Responder) Respond(ctx context.Context, q *resolver.Query, raw, buf []byte) ([]byte, error) {
	start := time.Now()
	if q.Listener == "" {
		q.Listener = r.cfg.Listener
	}
	if r.wire != nil {
		if resp, ok := r.cfg.tryWire(r.wire, q, raw, buf[:0], 0, start); ok {
			return resp, nil
		}
	}
	return r.cfg.answer(ctx, q, raw, buf[:0], DefaultIdleTimeout, start)
}

// TryWire is the non-blocking half of Respond: it offers raw to the Handler's
// WireHandler fast path only (a cache hit, say) and never calls ServeDNS, so
// a transport may call it on a connection's read loop and hand what it
// declines to Respond on another goroutine. Padding on encrypted transports
// is added as Reply adds it. The response is appended to dst; a hit is
// counted in Metrics.
func (r *Responder) TryWire(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
	if r.wire == nil {
		return nil, false
	}
	if q.Listener == "" {
		q.Listener = r.cfg.Listener
	}
	return r.cfg.tryWire(r.wire, q, raw, dst, 0, time.Now())
}
