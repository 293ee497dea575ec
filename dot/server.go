package dot

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

// Config configures a DoT server. Zero values of the durations and limits
// mean do53's Default… constants.
type Config struct {
	// Config holds Handler (required), Logger, Metrics, Listener,
	// QueryTimeout and MaxInFlight (per connection), as for any do53 stream
	// listener.
	do53.Config

	// TLSConfig is typically tlsconf.Provider.ServerConfig(tlsconf.DoT). It
	// is cloned; NextProtos is set to "dot" (clients that send no ALPN are
	// still served). Required.
	TLSConfig *tls.Config

	IdleTimeout      time.Duration // RFC 7766 §6.2.3; also advertised by keepalive
	ReadTimeout      time.Duration // bound on receiving one whole query
	HandshakeTimeout time.Duration // bound on the TLS handshake (half-open clients)
	MaxConns         int           // open connections; the longest idle is evicted first
}

// Server is a DoT server. It is safe for concurrent use.
type Server struct {
	*do53.StreamServer
	tls *tls.Config
}

// New checks cfg and returns a Server; nothing listens until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.TLSConfig == nil {
		return nil, errors.New("dot: Config.TLSConfig is nil")
	}
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("component", "dot")
	}
	ss, err := do53.NewStreamServer(do53.StreamConfig{
		Config:           cfg.Config,
		Transport:        resolver.TLS,
		IdleTimeout:      cfg.IdleTimeout,
		ReadTimeout:      cfg.ReadTimeout,
		HandshakeTimeout: cfg.HandshakeTimeout,
		MaxConns:         cfg.MaxConns,
	})
	if err != nil {
		return nil, err
	}
	tc := cfg.TLSConfig.Clone()
	tc.NextProtos = []string{"dot"}
	return &Server{StreamServer: ss, tls: tc}, nil
}

// Serve accepts TCP connections on l, wraps them in TLS and serves DoT until
// Shutdown or Close, then returns do53.ErrServerClosed. The Server owns l.
func (s *Server) Serve(l net.Listener) error {
	return s.StreamServer.Serve(tls.NewListener(l, s.tls))
}

// Shutdown and Close are do53.StreamServer's: Shutdown lets connections
// answer what they read, Close cuts them at once.
var _ interface {
	Shutdown(context.Context) error
	Close() error
} = (*Server)(nil)
