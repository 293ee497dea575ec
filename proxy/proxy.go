package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Dialer is the network proxied connections are made through; *ipsec.Tunnel
// and upstream.System() satisfy it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Config describes one proxy listener. The zero value of each field is
// documented; Dialer is required.
type Config struct {
	// Dialer makes every outbound connection.
	Dialer Dialer

	// Resolve turns a host name into addresses. Nil means names are refused
	// and only IP literals are accepted.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)

	// Allow says whether a client may use the proxy. Nil allows loopback and
	// private addresses only, as the resolver's default ACL does.
	Allow func(client netip.Addr) bool

	// Ports is the allow-list of destination ports. Empty means 443 only.
	Ports []uint16

	// MaxConns bounds concurrent proxied connections; 0 means 512.
	MaxConns int

	// IdleTimeout closes a connection with no traffic either way; 0 means 5 minutes.
	IdleTimeout time.Duration

	// DialTimeout bounds one outbound dial, name resolution included; 0 means 10 s.
	DialTimeout time.Duration

	// HandshakeTimeout bounds reading the client's SOCKS or CONNECT request; 0 means 10 s.
	HandshakeTimeout time.Duration

	Metrics *Metrics     // nil: no metrics
	Logger  *slog.Logger // nil: discard
}

// Server serves SOCKS5 and HTTP CONNECT on the same listener, telling them apart
// by the first byte (5 for SOCKS5, a letter for HTTP).
type Server struct {
	cfg    Config
	ports  map[uint16]bool
	sem    chan struct{}
	ctx    context.Context // cancelled by Close: aborts resolutions and dials
	cancel context.CancelFunc
	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{}
	closed atomic.Bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("proxy: server closed")

// New validates cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Dialer == nil {
		return nil, errors.New("proxy: no Dialer")
	}
	if cfg.Allow == nil {
		cfg.Allow = defaultAllow
	}
	if len(cfg.Ports) == 0 {
		cfg.Ports = []uint16{443}
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 512
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		ports: make(map[uint16]bool, len(cfg.Ports)),
		sem:   make(chan struct{}, cfg.MaxConns),
		lns:   make(map[net.Listener]struct{}),
		conns: make(map[net.Conn]struct{}),
	}
	for _, p := range cfg.Ports {
		s.ports[p] = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func defaultAllow(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}

// Serve accepts connections on ln until Close; it always returns a non-nil
// error, ErrServerClosed after Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closed.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
		default:
			s.cfg.Metrics.conn("limit")
			c.Close()
			continue
		}
		if !s.track(c, true) {
			<-s.sem
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer s.track(c, false)
			defer c.Close()
			s.handle(c)
		}()
	}
}

// track adds c to the open connections (counting it in wg, for its
// goroutine to finish) or removes it; adding fails once Close has begun.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1) // under mu: Close's Wait is ordered after it
		s.cfg.Metrics.active(1)
		return true
	}
	delete(s.conns, c)
	s.cfg.Metrics.active(-1)
	return true
}

// Close stops every listener and connection and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	s.cancel()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) handle(c net.Conn) {
	client, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	if !s.cfg.Allow(client.Addr()) {
		s.cfg.Metrics.conn("acl")
		return
	}
	c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	// http.ReadRequest reads headers without a size limit: cap what the
	// request may take until it has been answered.
	lim := &capReader{r: c, n: maxRequest}
	br := bufio.NewReaderSize(lim, 1024)
	first, err := br.Peek(1)
	if err != nil {
		s.cfg.Metrics.conn("bad_request")
		return
	}
	var p protocol
	if first[0] == socksVersion {
		p = &socks5{}
	} else {
		p = &httpConnect{}
	}
	host, port, err := p.readRequest(br, c)
	if err != nil {
		s.cfg.Metrics.conn("bad_request")
		s.cfg.Logger.Debug("proxy: bad request", "proto", p.name(), "err", err)
		return
	}
	up, reason, err := s.dial(host, port)
	if err != nil {
		s.cfg.Metrics.conn(reason)
		s.cfg.Logger.Debug("proxy: dial failed", "proto", p.name(), "reason", reason, "err", err)
		p.reply(c, reason, nil)
		return
	}
	defer up.Close()
	if err := p.reply(c, "ok", up.LocalAddr()); err != nil {
		s.cfg.Metrics.conn("client_gone")
		return
	}
	c.SetDeadline(time.Time{})
	lim.n = -1
	s.cfg.Metrics.conn("ok")
	s.relay(c, br, up)
}

// dial resolves and connects, returning a reason label on failure.
func (s *Server) dial(host string, port uint16) (net.Conn, string, error) {
	if !s.ports[port] {
		return nil, "port", fmt.Errorf("port %d not allowed", port)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		if s.cfg.Resolve == nil {
			return nil, "resolve", errors.New("names not accepted")
		}
		addrs, err = s.cfg.Resolve(ctx, host)
		if err != nil || len(addrs) == 0 {
			return nil, "resolve", fmt.Errorf("resolving %q: %w", host, err)
		}
	}
	var last error
	for _, a := range addrs {
		c, err := s.cfg.Dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), port).String())
		if err == nil {
			return c, "", nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, "dial", last
}

// relay copies both ways until either side closes or the idle timeout passes.
func (s *Server) relay(c net.Conn, br *bufio.Reader, up net.Conn) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst net.Conn, src io.Reader, dir string) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
				s.cfg.Metrics.bytes(dir, n)
			}
			if err != nil {
				break
			}
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, br, "out")
	go cp(c, up, "in")
	idle := s.cfg.IdleTimeout
	t := time.NewTimer(idle)
	defer t.Stop()
	for finished := 0; finished < 2; {
		select {
		case <-done:
			finished++
		case <-t.C:
			if since := time.Since(time.Unix(0, last.Load())); since < idle {
				t.Reset(idle - since)
				continue
			}
			s.cfg.Metrics.conn("idle")
			c.Close()
			up.Close()
			t.Reset(time.Hour)
		}
	}
}

// maxRequest bounds the bytes a client may send before its request is
// answered: a SOCKS5 request is under 600 bytes, a CONNECT request a line
// and a few headers.
const maxRequest = 16 << 10

// capReader fails reads past n bytes; n < 0 means no limit. It is read and
// lifted by the connection's goroutine only.
type capReader struct {
	r io.Reader
	n int64
}

var errRequestTooLarge = errors.New("proxy: request too large")

func (l *capReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errRequestTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

type protocol interface {
	name() string
	readRequest(br *bufio.Reader, c net.Conn) (host string, port uint16, err error)
	// reply reports the outcome: "ok" or a failure reason from dial.
	reply(c net.Conn, reason string, bound net.Addr) error
}

func splitPort(hostport string) (string, uint16, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, uint16(n), nil
}
