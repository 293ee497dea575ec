package doh

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/doh/h2"
	"github.com/laminadns/lamina/resolver"
)

// Defaults for zero Config fields.
const (
	DefaultPath                 = "/dns-query"
	DefaultIdleTimeout          = 60 * time.Second
	DefaultMaxConcurrentStreams = 100
	DefaultHeaderTimeout        = 5 * time.Second
	// DefaultMaxConns is ten times the stream transports' bound: browsers
	// keep one DoH connection each, idle most of the time.
	DefaultMaxConns = 10000
)

// Config configures a Server. The zero value of every field but Handler and
// TLSConfig is valid.
type Config struct {
	// Handler answers queries. Required. A resolver.WireHandler fast path
	// is used for queries without EDNS padding.
	Handler resolver.Handler

	// TLSConfig serves HTTPS and HTTP/3, typically
	// tlsconf.Provider.ServerConfig(tlsconf.DoH). It is cloned; its
	// NextProtos are replaced (h2, http/1.1 over TCP; h3 over QUIC).
	// Required by Serve and ServeH3, not by ServeHTTP.
	TLSConfig *tls.Config

	// Path is where queries are served; zero means /dns-query. The JSON API
	// answers on the same path and on /resolve.
	Path string

	// Listener names the listener in resolver.Query.Listener.
	Listener string

	Logger  *slog.Logger  // nil: discard
	Metrics *do53.Metrics // nil: none

	// QueryTimeout bounds each ServeDNS call; zero means
	// do53.DefaultQueryTimeout. The request's context cancels it earlier
	// when the client goes away.
	QueryTimeout time.Duration

	// IdleTimeout closes idle connections; zero means 60 s.
	IdleTimeout time.Duration

	// MaxConns bounds open HTTP/1.1 and HTTP/2 connections; a connection
	// accepted beyond it is closed at once and counted as an overload
	// drop. Zero means DefaultMaxConns (HTTP/3 connections are bounded by
	// QUIC's own limits).
	MaxConns int

	// HeaderTimeout bounds the TLS handshake and the reading of an
	// HTTP/1.1 request's headers, against half-open and slowloris clients;
	// zero means 5 s.
	HeaderTimeout time.Duration

	// MaxConcurrentStreams bounds streams per HTTP/2 and HTTP/3 connection;
	// zero means 100, the value RFC 9113 §6.5.2 recommends as a minimum and
	// Unbound's default: dnsperf 2.10 crashes against servers that allow
	// more.
	MaxConcurrentStreams int

	// AltSvcH3Port, when non-zero, makes HTTP/1.1 and HTTP/2 responses
	// advertise HTTP/3 on that UDP port (RFC 7838), for an HTTP/3 listener
	// run by another Server. Zero advertises this Server's own ServeH3
	// listeners while they run.
	AltSvcH3Port int

	// Allow0RTT accepts HTTP/3 requests in 0-RTT data. DoH requests are
	// queries and so idempotent, but 0-RTT data can be replayed (RFC 9250
	// §4.5 discusses the same for DoQ); off by default.
	Allow0RTT bool
}

// Server is a DoH server: an http.Handler for Config.Path plus the HTTP/1.1,
// HTTP/2 and HTTP/3 listeners that serve it. It is safe for concurrent use.
type Server struct {
	cfg  Config
	log  *slog.Logger
	resp *do53.Responder
	mux  *http.ServeMux
	http *http.Server
	h3   *http3.Server

	altSvc string // fixed Alt-Svc value from AltSvcH3Port

	mu      sync.Mutex
	h3Ports int // running HTTP/3 listeners; Alt-Svc is sent while > 0
}

// New checks cfg and returns a Server; nothing listens until Serve or ServeH3.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("doh: Config.Handler is nil")
	}
	if cfg.QueryTimeout < 0 || cfg.IdleTimeout < 0 || cfg.HeaderTimeout < 0 || cfg.MaxConcurrentStreams < 0 || cfg.MaxConns < 0 || cfg.AltSvcH3Port < 0 || cfg.AltSvcH3Port > 65535 {
		return nil, errors.New("doh: negative timeout or limit")
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Path[0] != '/' {
		return nil, errors.New("doh: Path must start with /")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = do53.DefaultQueryTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "doh", "listener", cfg.Listener)}
	resp, err := do53.NewResponder(do53.Config{Handler: cfg.Handler, Logger: s.log, Metrics: cfg.Metrics,
		Listener: cfg.Listener, QueryTimeout: cfg.QueryTimeout})
	if err != nil {
		return nil, err
	}
	s.resp = resp
	if cfg.AltSvcH3Port != 0 {
		s.altSvc = `h3=":` + strconv.Itoa(cfg.AltSvcH3Port) + `"; ma=86400`
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(cfg.Path, s.serveDoH)
	if cfg.Path != "/resolve" {
		s.mux.HandleFunc("/resolve", s.serveJSON)
	}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.h3 = &http3.Server{
		Handler:     s,
		IdleTimeout: cfg.IdleTimeout,
		Logger:      s.log,
		QUICConfig: &quic.Config{
			Allow0RTT:          cfg.Allow0RTT,
			MaxIncomingStreams: int64(cfg.MaxConcurrentStreams),
			MaxIdleTimeout:     cfg.IdleTimeout,
		},
	}
	if cfg.TLSConfig != nil {
		s.http.TLSConfig = cfg.TLSConfig.Clone()
		s.http.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		s.h3.TLSConfig = http3.ConfigureTLSConfig(cfg.TLSConfig)
	}
	// HTTP/2 is served by package doh/h2; net/http keeps HTTP/1.1, the TLS
	// handshake, connection tracking and Close.
	if err := s.useFastH2(); err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP answers DoH requests on Config.Path and JSON requests on /resolve;
// anything else is 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor < 3 {
		if s.altSvc != "" {
			w.Header().Set("Alt-Svc", s.altSvc)
		} else if s.h3Running() {
			s.h3.SetQUICHeaders(w.Header()) // Alt-Svc: h3=":port" (RFC 7838)
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) h3Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h3Ports > 0
}

// Serve serves HTTP/1.1 and HTTP/2 over TLS on l until Shutdown or Close,
// then returns http.ErrServerClosed. The Server owns l.
func (s *Server) Serve(l net.Listener) error {
	if s.http.TLSConfig == nil {
		return errors.New("doh: Serve needs Config.TLSConfig")
	}
	s.log.Info("serving DoH", "addr", l.Addr().String())
	l = &limitListener{Listener: l, max: int64(s.cfg.MaxConns), metrics: s.cfg.Metrics}
	return s.http.ServeTLS(s.wrapListener(l), "", "")
}

// ServeH3 serves HTTP/3 on pc until Shutdown or Close, then returns
// http.ErrServerClosed. While it runs, HTTP/1.1 and HTTP/2 responses carry
// Alt-Svc for its port. pc is not closed by the Server.
func (s *Server) ServeH3(pc net.PacketConn) error {
	if s.h3.TLSConfig == nil {
		return errors.New("doh: ServeH3 needs Config.TLSConfig")
	}
	s.mu.Lock()
	s.h3Ports++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.h3Ports--
		s.mu.Unlock()
	}()
	s.log.Info("serving DoH over HTTP/3", "addr", pc.LocalAddr().String())
	return s.h3.Serve(pc)
}

// Shutdown stops accepting and waits for active requests to finish or ctx
// to end.
func (s *Server) Shutdown(ctx context.Context) error {
	return errors.Join(s.http.Shutdown(ctx), s.h3.Shutdown(ctx))
}

// Close closes all listeners and connections at once.
func (s *Server) Close() error {
	return errors.Join(s.http.Close(), s.h3.Close())
}

// query builds the resolver.Query for an HTTP request.
func (s *Server) query(r *http.Request) *resolver.Query {
	q := &resolver.Query{Transport: transport(r), Listener: s.cfg.Listener}
	q.Client, _ = netip.ParseAddrPort(r.RemoteAddr)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		q.Local, _ = netip.ParseAddrPort(a.String())
	}
	if r.TLS != nil {
		q.TLS = &resolver.TLSInfo{
			Version:     r.TLS.Version,
			CipherSuite: r.TLS.CipherSuite,
			ServerName:  r.TLS.ServerName,
			ALPN:        r.TLS.NegotiatedProtocol,
			ECHAccepted: r.TLS.ECHAccepted,
			Resumed:     r.TLS.DidResume,
		}
	}
	return q
}

// serveDoH answers an RFC 8484 request, or a JSON one on the same path.
func (s *Server) serveDoH(w http.ResponseWriter, r *http.Request) {
	if wantsJSON(r) {
		s.serveJSON(w, r)
		return
	}
	raw, err := readQuery(w, r)
	if err != nil {
		s.cfg.Metrics.Dropped(transport(r), do53.DropMalformed)
		s.fail(w, err)
		return
	}
	wire, ok := s.answer(r.Context(), s.query(r), raw)
	if !ok {
		// Not a DNS query, or the policy asked to drop it: HTTP has to say
		// something, and 400 tells the client not to retry as is.
		s.fail(w, badRequest(http.StatusBadRequest, "no answer"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", mimeDNSMessage)
	h.Set("Content-Length", strconv.Itoa(len(wire)))
	h.Set("Cache-Control", h2.CacheControl(wire))
	w.Write(wire)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var re *requestError
	if errors.As(err, &re) {
		status = re.status
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, POST")
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, err.Error(), status)
}
