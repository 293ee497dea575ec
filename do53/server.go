package do53

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	DefaultMaxQueries       = 4096    // slow-path queries per StreamServer
	DefaultMaxQueued        = 1 << 20 // bytes of answers waiting per connection
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

// wireHandler is the Handler's optional fast path, or nil.
func (c *Config) wireHandler() resolver.WireHandler {
	w, _ := c.Handler.(resolver.WireHandler)
	return w
}
