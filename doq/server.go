package doq

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

// RFC 9250 §4.3 error codes, sent as QUIC application (connection) or
// stream error codes; untyped so that they serve as both.
const (
	NoError          = 0x0 // DOQ_NO_ERROR
	InternalError    = 0x1 // DOQ_INTERNAL_ERROR
	ProtocolError    = 0x2 // DOQ_PROTOCOL_ERROR
	RequestCancelled = 0x3 // DOQ_REQUEST_CANCELLED
	ExcessiveLoad    = 0x4 // DOQ_EXCESSIVE_LOAD
)

// Defaults for zero Config fields.
const (
	DefaultIdleTimeout = 30 * time.Second
	DefaultMaxStreams  = 100
	DefaultReadTimeout = 2 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("doq: server closed")

// Config configures a Server. The zero value of every field but Handler and
// TLSConfig is valid.
type Config struct {
	// Handler answers queries. Required.
	Handler resolver.Handler

	// TLSConfig is typically tlsconf.Provider.ServerConfig(tlsconf.DoQ). It
	// is cloned and its NextProtos set to "doq". Required.
	TLSConfig *tls.Config

	Listener string        // names the listener in resolver.Query.Listener
	Logger   *slog.Logger  // nil: discard
	Metrics  *do53.Metrics // nil: none

	// QueryTimeout bounds each ServeDNS call; zero means
	// do53.DefaultQueryTimeout.
	QueryTimeout time.Duration

	// IdleTimeout closes connections without traffic (QUIC max_idle_timeout);
	// zero means 30 s.
	IdleTimeout time.Duration

	// ReadTimeout bounds the time a stream may take to deliver its query;
	// zero means 2 s.
	ReadTimeout time.Duration

	// MaxStreams bounds concurrent queries per connection (the QUIC stream
	// limit); zero means 100.
	MaxStreams int

	// MaxConns bounds open connections; more are closed with
	// DOQ_EXCESSIVE_LOAD. Zero means do53.DefaultMaxConns.
	MaxConns int

	// MaxQueries bounds queries read and being answered across all
	// connections, so that MaxConns × MaxStreams cannot pin memory. A
	// stream beyond it waits for a slot (its query is not read, so QUIC
	// flow control holds the client back); after QueryTimeout it is reset
	// with DOQ_EXCESSIVE_LOAD. Zero means do53.DefaultMaxQueries.
	MaxQueries int

	// MaxQueued bounds the bytes of answers a connection's streams are
	// blocked writing. A client that stops reading and lets more pile up is
	// closed with DOQ_EXCESSIVE_LOAD (counted as a "slow_reader" drop).
	// Zero means do53.DefaultMaxQueued.
	MaxQueued int

	// Allow0RTT accepts queries in 0-RTT data (RFC 9250 §4.5); off by default.
	Allow0RTT bool
}

// Server serves DoQ. It is safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	resp *do53.Responder // what every transport runs on a raw query
	tls  *tls.Config
	quic *quic.Config

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	slots  chan struct{} // queries being answered, server-wide

	mu     sync.Mutex
	lns    map[*quic.EarlyListener]struct{}
	conns  map[*quic.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // connection goroutines
}

// New checks cfg and returns a Server; nothing listens until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil || cfg.TLSConfig == nil {
		return nil, errors.New("doq: Config.Handler and Config.TLSConfig are required")
	}
	if cfg.QueryTimeout < 0 || cfg.IdleTimeout < 0 || cfg.ReadTimeout < 0 || cfg.MaxStreams < 0 || cfg.MaxConns < 0 ||
		cfg.MaxQueries < 0 || cfg.MaxQueued < 0 {
		return nil, errors.New("doq: negative timeout or limit")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.QueryTimeout, do53.DefaultQueryTimeout)
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	def(&cfg.ReadTimeout, DefaultReadTimeout)
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = do53.DefaultMaxConns
	}
	if cfg.MaxQueries == 0 {
		cfg.MaxQueries = do53.DefaultMaxQueries
	}
	if cfg.MaxQueued == 0 {
		cfg.MaxQueued = do53.DefaultMaxQueued
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "doq", "listener", cfg.Listener),
		slots: make(chan struct{}, cfg.MaxQueries),
		lns:   map[*quic.EarlyListener]struct{}{}, conns: map[*quic.Conn]struct{}{}}
	var err error
	s.resp, err = do53.NewResponder(do53.Config{
		Handler: cfg.Handler, Logger: s.log, Metrics: cfg.Metrics,
		Listener: cfg.Listener, QueryTimeout: cfg.QueryTimeout,
	})
	if err != nil {
		return nil, err
	}
	s.tls = cfg.TLSConfig.Clone()
	s.tls.NextProtos = []string{"doq"}
	s.quic = &quic.Config{
		MaxIdleTimeout:        cfg.IdleTimeout,
		MaxIncomingStreams:    int64(cfg.MaxStreams),
		MaxIncomingUniStreams: -1, // RFC 9250 §4.2: DoQ uses no unidirectional streams
		Allow0RTT:             cfg.Allow0RTT,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts DoQ connections on pc until Shutdown or Close, then returns
// ErrServerClosed. pc is not closed by the Server.
func (s *Server) Serve(pc net.PacketConn) error {
	ln, err := quic.ListenEarly(pc, s.tls, s.quic)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	s.log.Info("serving DoQ", "addr", pc.LocalAddr().String())
	for {
		c, err := ln.Accept(s.ctx)
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.lns, ln)
			s.mu.Unlock()
			ln.Close()
			if closed {
				return ErrServerClosed
			}
			return err
		}
		if !s.track(c) {
			continue
		}
		go s.serveConn(c)
	}
}

// track admits c unless the server is closing or full; an admitted c is
// counted in wg and must be served by serveConn.
func (s *Server) track(c *quic.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.CloseWithError(NoError, "")
		return false
	}
	if len(s.conns) >= s.cfg.MaxConns {
		s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropOverload)
		// Application error codes travel only in 1-RTT packets (RFC 9000
		// §10.2.3), and the early listener hands out connections before
		// the handshake ends: wait for it, so the client sees the code.
		go func() {
			select {
			case <-c.HandshakeComplete():
			case <-c.Context().Done():
			case <-s.ctx.Done():
			}
			c.CloseWithError(ExcessiveLoad, "too many connections")
		}()
		return false
	}
	s.conns[c] = struct{}{}
	// Under mu, so that Shutdown's Wait, which follows its own locked
	// section, is ordered after this Add.
	s.wg.Add(1)
	s.cfg.Metrics.ConnOpened(resolver.QUIC)
	return true
}

// serveConn accepts streams until the connection ends or the server stops;
// each stream is one query, answered concurrently (the stream limit bounds
// how many per connection, MaxQueries in all). It closes the connection once its streams are answered: on
// Shutdown that tells the client with DOQ_NO_ERROR; a connection already
// gone ignores it.
func (s *Server) serveConn(c *quic.Conn) {
	defer s.wg.Done()
	var streams sync.WaitGroup
	defer func() {
		streams.Wait()
		c.CloseWithError(NoError, "")
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.cfg.Metrics.ConnClosed(resolver.QUIC)
	}()
	base := resolver.Query{Transport: resolver.QUIC, Listener: s.cfg.Listener, MaxSize: 65535}
	base.Client, base.Local = addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	var w writes
	for {
		st, err := c.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		streams.Add(1)
		go func() {
			defer streams.Done()
			s.serveStream(c, st, base, &w)
		}()
	}
}

// writes is what a connection's streams share of their answers.
type writes struct {
	queued atomic.Int64 // bytes being written
	slow   atomic.Bool  // closed for not reading them
}

// addrPort is a socket address as policy sees it: an IPv4 client of a
// dual-stack socket as IPv4, as on the other transports.
func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// serveStream reads one length-prefixed query, answers it and closes the
// stream (RFC 9250 §4.2). w is shared by the connection's streams.
func (s *Server) serveStream(c *quic.Conn, st *quic.Stream, q resolver.Query, w *writes) {
	start := time.Now()
	st.SetReadDeadline(start.Add(s.cfg.ReadTimeout))
	var hdr [2]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		s.streamReadFailed(c, st, err)
		return
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if !s.acquire(st) {
		return
	}
	defer func() { <-s.slots }()
	st.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
	raw := make([]byte, n)
	if _, err := io.ReadFull(st, raw); err != nil {
		s.streamReadFailed(c, st, err)
		return
	}
	if n >= 2 && (raw[0] != 0 || raw[1] != 0) {
		// RFC 9250 §4.2.1: a non-zero Message ID is a protocol error that
		// closes the connection.
		s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropMalformed)
		s.protocolError(c, "non-zero message ID")
		return
	}
	if do53.HasKeepalive(raw) {
		// RFC 9250 §4.3.3 and §5.5.2: edns-tcp-keepalive belongs to TCP
		// and DoT; on DoQ it is a protocol error.
		s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropMalformed)
		s.protocolError(c, "edns-tcp-keepalive")
		return
	}
	// The state is read per stream: with 0-RTT the first streams can
	// arrive before the handshake completes.
	cs := c.ConnectionState().TLS
	q.TLS = &resolver.TLSInfo{Version: cs.Version, CipherSuite: cs.CipherSuite, ServerName: cs.ServerName,
		ALPN: cs.NegotiatedProtocol, ECHAccepted: cs.ECHAccepted, Resumed: cs.DidResume}
	// The answer is packed in a frame's array just past its length prefix.
	frame := make([]byte, 2, 2+512)
	wire, err := s.resp.Respond(st.Context(), &q, raw, frame[2:])
	switch {
	case errors.Is(err, do53.ErrMalformed): // counted by Respond
		s.protocolError(c, "not a DNS query")
		return
	case err != nil: // resolver.ErrDrop, counted by Respond
		st.CancelRead(RequestCancelled)
		st.CancelWrite(RequestCancelled)
		return
	}
	st.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if &frame[:3][2] == &wire[0] {
		frame = frame[:2+len(wire)]
	} else {
		frame = append(frame, wire...) // too large for frame: packed elsewhere
	}
	binary.BigEndian.PutUint16(frame, uint16(len(wire)))
	size := int64(len(frame))
	if w.queued.Add(size) > int64(s.cfg.MaxQueued) {
		w.queued.Add(-size)
		if w.slow.CompareAndSwap(false, true) {
			s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropSlowReader)
			s.log.Debug("closing connection", "reason", "client not reading")
			c.CloseWithError(ExcessiveLoad, "answers not read")
		}
		return
	}
	_, err = st.Write(frame)
	w.queued.Add(-size)
	if err != nil {
		st.CancelRead(RequestCancelled)
		return
	}
	st.Close() // FIN after the response
	// A client that sent more than one message on the stream gets no more
	// answers; stop it sending.
	st.CancelRead(NoError)
}

// acquire takes a server slot for st's query, waiting up to QueryTimeout;
// it resets st with DOQ_EXCESSIVE_LOAD if none frees.
func (s *Server) acquire(st *quic.Stream) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.cfg.QueryTimeout)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-st.Context().Done():
		return false
	case <-t.C:
	}
	s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropOverload)
	st.CancelRead(ExcessiveLoad)
	st.CancelWrite(ExcessiveLoad)
	return false
}

// streamReadFailed handles a stream that did not deliver a whole query: a
// FIN mid-message is a protocol error (RFC 9250 §4.3.3); a reset by the
// client or our read timeout only ends the stream.
func (s *Server) streamReadFailed(c *quic.Conn, st *quic.Stream, err error) {
	s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropMalformed)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		s.protocolError(c, "stream ended inside a message")
		return
	}
	st.CancelRead(RequestCancelled)
	st.CancelWrite(RequestCancelled)
}

// protocolError closes c with DOQ_PROTOCOL_ERROR; the caller has counted
// the query.
func (s *Server) protocolError(c *quic.Conn, why string) {
	s.log.Debug("closing connection", "reason", why)
	c.CloseWithError(ProtocolError, why)
}
