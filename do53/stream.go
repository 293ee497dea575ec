package do53

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/internal/workpool"
	"github.com/laminadns/lamina/resolver"
)

// StreamConfig configures a StreamServer. Zero values of the durations and
// limits mean the Default… constants.
type StreamConfig struct {
	Config

	// Transport is resolver.TCP (the zero value means TCP) or resolver.TLS
	// for DoT, whose listener yields *tls.Conn.
	Transport resolver.Transport

	// IdleTimeout closes a connection with no query in flight and no new
	// query for this long (RFC 7766 §6.2.3); it is also the write deadline
	// and is advertised by edns-tcp-keepalive (RFC 7828).
	IdleTimeout time.Duration

	// ReadTimeout bounds the time between a frame's first byte and its last:
	// a client stalled mid-frame is disconnected.
	ReadTimeout time.Duration

	// HandshakeTimeout bounds the TLS handshake of *tls.Conn connections.
	HandshakeTimeout time.Duration

	// MaxConns bounds open connections per StreamServer. When it is reached
	// the connection idle the longest is closed to admit the new one; when
	// none is idle the new one is refused.
	MaxConns int

	// MaxQueries bounds slow-path queries in flight across all connections,
	// so that MaxConns × MaxInFlight cannot pin memory. When it is reached a
	// connection's reader waits for a slot (back-pressure on that client);
	// after IdleTimeout without one the connection is closed and the query
	// counted as overload. Queries ServeWire answers take no slot. Zero means
	// DefaultMaxQueries.
	MaxQueries int

	// MaxQueued bounds the bytes of answers waiting to be written on one
	// connection. A client that stops reading and lets more pile up is
	// disconnected (counted as a "slow_reader" drop) rather than buffered
	// for. Zero means DefaultMaxQueued.
	MaxQueued int
}

// StreamServer serves DNS over 2-byte length-framed streams (RFC 1035
// §4.2.2, RFC 7766): TCP for Do53 and, over a TLS listener, DoT (RFC 7858).
//
// Each connection has a reader goroutine, handlers running concurrently (up
// to MaxInFlight per connection and MaxQueries in all) and a writer goroutine that serialises framed responses in
// the order they are ready, so a slow query never holds back fast ones (RFC
// 7766 §6.2.1.1). Queries ServeWire answers are handled inline by the reader.
// StreamServer is safe for concurrent use.
type StreamServer struct {
	cfg  StreamConfig
	wire resolver.WireHandler

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	bufs   sync.Pool      // *[]byte frames
	slots  chan struct{}  // slow-path queries in flight, server-wide
	work   *workpool.Pool // runs slow-path queries

	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*conn]struct{}
	closing atomic.Bool
	connWG  sync.WaitGroup
}

// NewStreamServer checks cfg and returns a stream server; cfg is copied.
func NewStreamServer(cfg StreamConfig) (*StreamServer, error) {
	if err := cfg.Config.validate(DefaultConnInFlight); err != nil {
		return nil, err
	}
	if cfg.Transport == 0 {
		cfg.Transport = resolver.TCP
	}
	if cfg.Transport != resolver.TCP && cfg.Transport != resolver.TLS {
		return nil, fmt.Errorf("do53: stream transport %v is not tcp or tls", cfg.Transport)
	}
	if cfg.IdleTimeout < 0 || cfg.ReadTimeout < 0 || cfg.HandshakeTimeout < 0 || cfg.MaxConns < 0 || cfg.MaxQueries < 0 || cfg.MaxQueued < 0 {
		return nil, errors.New("do53: negative StreamConfig timeout or limit")
	}
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.ReadTimeout, DefaultReadTimeout)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.MaxConns, DefaultMaxConns)
	setDefault(&cfg.MaxQueries, DefaultMaxQueries)
	setDefault(&cfg.MaxQueued, DefaultMaxQueued)
	s := &StreamServer{cfg: cfg, wire: cfg.wireHandler(), slots: make(chan struct{}, cfg.MaxQueries),
		work: workpool.New(0), lns: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on l until Shutdown or Close, then returns
// ErrServerClosed. The StreamServer owns l and closes it. Serve may be called
// for several listeners; MaxConns counts them together.
func (s *StreamServer) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	s.cfg.Logger.Info("serving", "listener", s.cfg.Listener, "transport", s.cfg.Transport.String(), "addr", l.Addr().String())
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and friends: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("accept failed", "listener", s.cfg.Listener, "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := s.newConn(nc)
		if !s.track(c) {
			s.cfg.Metrics.Dropped(s.cfg.Transport, DropOverload)
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// track registers c, closing the longest-idle connection when MaxConns is
// reached. It reports false when c must be refused.
func (s *StreamServer) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if len(s.conns) >= s.cfg.MaxConns {
		var victim *conn
		for o := range s.conns {
			if o.idle() && (victim == nil || o.lastActive.Load() < victim.lastActive.Load()) {
				victim = o
			}
		}
		if victim == nil {
			return false
		}
		delete(s.conns, victim)
		victim.close()
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.cfg.Metrics.ConnOpened(s.cfg.Transport)
	return true
}

func (s *StreamServer) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.cfg.Metrics.ConnClosed(s.cfg.Transport)
	s.connWG.Done()
}

// Shutdown stops accepting and reading, lets every connection answer the
// queries it has read, then closes it. If ctx ends first, the rest are
// closed at once and ctx's error is returned.
func (s *StreamServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.lns {
		l.Close()
	}
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Now()) // the reader sees closing and stops
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.Close()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes listeners and connections at once, cancelling in-flight
// queries. It is idempotent and always returns nil.
func (s *StreamServer) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	s.cancel()
	for l := range s.lns {
		l.Close()
		delete(s.lns, l)
	}
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	s.work.Close()
	return nil
}

func (s *StreamServer) getBuf() *[]byte { return s.bufs.Get().(*[]byte) }

// putBuf keeps buffers up to a batch and its growth margin, so the pool never
// pins 64 KiB frames.
func (s *StreamServer) putBuf(bp *[]byte) {
	if cap(*bp) <= 32<<10 {
		*bp = (*bp)[:0]
		s.bufs.Put(bp)
	}
}

// tlsInfo copies what policy may know of a finished handshake.
func tlsInfo(cs tls.ConnectionState) *resolver.TLSInfo {
	return &resolver.TLSInfo{
		Version:     cs.Version,
		CipherSuite: cs.CipherSuite,
		ServerName:  cs.ServerName,
		ALPN:        cs.NegotiatedProtocol,
		ECHAccepted: cs.ECHAccepted,
		Resumed:     cs.DidResume,
	}
}
