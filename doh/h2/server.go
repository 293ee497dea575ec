package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

// Defaults for zero Config fields.
const (
	DefaultPath                 = "/dns-query"
	DefaultMaxConcurrentStreams = 100
	DefaultIdleTimeout          = 60 * time.Second
	DefaultMaxResetsPerSecond   = 200
)

// Config configures a Server. Every field but Handler has a valid zero value.
type Config struct {
	// Handler answers DoH queries. Required. Its resolver.WireHandler fast
	// path, when it has one, answers on the connection's read loop.
	Handler resolver.Handler

	// Fallback serves every request that is not a well-formed DoH GET or
	// POST on Path (JSON API, HEAD, other methods, bad requests). Nil
	// answers those with plain 400, 404, 405, 413 or 415.
	Fallback http.Handler

	// Path is where DoH queries are answered; zero means /dns-query.
	Path string

	Metrics  *do53.Metrics // nil: none
	Logger   *slog.Logger  // nil: discard
	Listener string        // resolver.Query.Listener

	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS; zero means
	// 100 (dnsperf 2.10 misbehaves against servers that allow more).
	// Streams beyond it are refused (RFC 9113 §5.1.2).
	MaxConcurrentStreams int

	// IdleTimeout closes a connection on which no stream has started for
	// that long; it also bounds every write. Zero means 60 s.
	IdleTimeout time.Duration

	// QueryTimeout bounds each query that misses the fast path; zero means
	// do53.DefaultQueryTimeout.
	QueryTimeout time.Duration

	// MaxResetsPerSecond bounds RST_STREAM frames a client may send per
	// second (the "rapid reset" attack, CVE-2023-44487); beyond it the
	// connection gets GOAWAY ENHANCE_YOUR_CALM. Zero means 200.
	MaxResetsPerSecond int

	// AltSvc, when set, is called for every DoH response and its non-empty
	// result sent as Alt-Svc (RFC 7838), to advertise HTTP/3.
	AltSvc func() string
}

// Server serves DoH over HTTP/2 connections handed to ServeConn. It is safe
// for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	resp *do53.Responder

	// writerGoroutine makes workers hand their answers to a writer
	// goroutine per connection instead of writing them themselves; only
	// BenchmarkWorkerWrite sets it, to compare the two.
	writerGoroutine bool

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup // ServeConn calls
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("h2: Config.Handler is nil")
	}
	if cfg.MaxConcurrentStreams < 0 || cfg.IdleTimeout < 0 || cfg.QueryTimeout < 0 || cfg.MaxResetsPerSecond < 0 {
		return nil, errors.New("h2: negative limit or timeout")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Path[0] != '/' {
		return nil, errors.New("h2: Path must start with /")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxResetsPerSecond == 0 {
		cfg.MaxResetsPerSecond = DefaultMaxResetsPerSecond
	}
	r, err := do53.NewResponder(do53.Config{Handler: cfg.Handler, Logger: cfg.Logger, Metrics: cfg.Metrics,
		Listener: cfg.Listener, QueryTimeout: cfg.QueryTimeout})
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "doh-h2", "listener", cfg.Listener), resp: r, conns: map[*conn]struct{}{}}
	return s, nil
}

// ServeConn serves c, a TLS connection whose handshake is complete and
// which negotiated h2, until the client leaves, the connection idles out or
// breaks the protocol, or the Server shuts down. It closes c. ctx is the
// connection's base context (net/http's carries LocalAddrContextKey);
// cancelling it stops the connection.
func (s *Server) ServeConn(ctx context.Context, c *tls.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.wg.Add(1)
	hc := newConn(s, c)
	s.conns[hc] = struct{}{}
	s.mu.Unlock()
	s.cfg.Metrics.ConnOpened(resolver.HTTPS)
	defer func() {
		s.mu.Lock()
		delete(s.conns, hc)
		s.mu.Unlock()
		s.cfg.Metrics.ConnClosed(resolver.HTTPS)
		s.wg.Done()
	}()
	hc.serve(ctx)
}

// Shutdown sends GOAWAY on every connection, lets them answer the streams
// they have, and waits for them to close or ctx to end (then closes them).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes every connection at once and waits for their loops to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// connQuery is the part of resolver.Query every query of a connection
// shares.
func connQuery(s *Server, c netConn) resolver.Query {
	q := resolver.Query{Transport: resolver.HTTPS, Listener: s.cfg.Listener}
	q.Client = addrPort(c.RemoteAddr())
	q.Local = addrPort(c.LocalAddr())
	cs := c.ConnectionState()
	q.TLS = &resolver.TLSInfo{Version: cs.Version, CipherSuite: cs.CipherSuite, ServerName: cs.ServerName,
		ALPN: cs.NegotiatedProtocol, ECHAccepted: cs.ECHAccepted, Resumed: cs.DidResume}
	return q
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
