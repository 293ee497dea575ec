package do53

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("do53: server closed")

// errPanic stands for a recovered handler panic; it is answered SERVFAIL.
var errPanic = errors.New("do53: handler panicked")

// Defaults for the zero values of Config and StreamConfig.
const (
	DefaultQueryTimeout     = 5 * time.Second
	DefaultUDPInFlight      = 2048
	DefaultConnInFlight     = 100
	DefaultIdleTimeout      = 10 * time.Second
	DefaultReadTimeout      = 2 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxConns         = 1000
)

// Config is what every Do53 and stream listener needs. The zero value of each
// field but Handler is valid.
type Config struct {
	// Handler answers queries. Required. If it also implements
	// resolver.WireHandler, ServeWire is tried on the raw query first.
	Handler resolver.Handler

	// Logger receives lifecycle events (Info) and per-query trouble (Debug).
	// Nil discards.
	Logger *slog.Logger

	// Metrics records queries, drops and connections. Nil records nothing.
	Metrics *Metrics

	// Listener names the listener in resolver.Query.Listener (for
	// per-listener policy) and in logs.
	Listener string

	// QueryTimeout bounds each ServeDNS call through its context. Zero means
	// DefaultQueryTimeout.
	QueryTimeout time.Duration

	// MaxInFlight bounds queries handled concurrently on the slow path (not
	// answered by ServeWire). For the UDP Server it is per Server, and a query
	// beyond it is dropped and counted (the client retries); zero means
	// DefaultUDPInFlight. For StreamServer it is per connection, and the
	// connection is not read while it is reached (RFC 7766 §6.2.1.1
	// back-pressure); zero means DefaultConnInFlight.
	MaxInFlight int
}

// validate fills in defaults; inFlight is the transport's MaxInFlight default.
func (c *Config) validate(inFlight int) error {
	if c.Handler == nil {
		return errors.New("do53: Config.Handler is nil")
	}
	if c.QueryTimeout < 0 || c.MaxInFlight < 0 {
		return fmt.Errorf("do53: negative QueryTimeout or MaxInFlight")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = inFlight
	}
	return nil
}

// serveDNS calls h with a per-query deadline and turns a panic into errPanic.
func (c *Config) serveDNS(parent context.Context, q *resolver.Query) (resp *dns.Msg, err error) {
	ctx, cancel := context.WithTimeout(parent, c.QueryTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
			resp, err = nil, errPanic
		}
	}()
	return c.Handler.ServeDNS(ctx, q)
}

func (c *Config) panicked(r any) {
	c.Metrics.Panic()
	c.Logger.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
}

// finish replies to q and accounts for it. It returns the wire response, or
// false when there is nothing to send.
func (c *Config) finish(q *resolver.Query, resp *dns.Msg, err error, buf []byte, idle time.Duration, start time.Time) ([]byte, bool) {
	wire, ok := reply(q, resp, err, buf, idle)
	if !ok {
		c.Metrics.Dropped(q.Transport, DropPolicy)
		return nil, false
	}
	var qtype uint16
	if q.Msg != nil && len(q.Msg.Question) > 0 {
		qtype = q.Msg.Question[0].Qtype
	}
	rcode := int(wire[3] & 0xF)
	if err == nil && resp != nil && resp.Rcode&0xF == rcode {
		rcode = resp.Rcode // keep extended RCODEs such as BADVERS
	}
	c.Metrics.Observe(q, qtype, rcode, time.Since(start))
	return wire, true
}

// isWire reports the Handler's optional fast path.
func (c *Config) wireHandler() resolver.WireHandler {
	w, _ := c.Handler.(resolver.WireHandler)
	return w
}

// serveWire runs the fast path with panic recovery; a panic counts and
// declines, so the slow path answers (SERVFAIL if it panics too).
func (c *Config) serveWire(w resolver.WireHandler, q *resolver.Query, raw, dst []byte) (resp []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
			resp, ok = nil, false
		}
	}()
	resp, ok = w.ServeWire(q, raw, dst)
	if ok && (len(resp) < headerLen || len(resp) > q.MaxSize) {
		return nil, false // breaks the WireHandler contract; let ServeDNS answer
	}
	return resp, ok
}
