package doh

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/laminadns/lamina/doh/h2"
)

// useFastH2 serves HTTP/2 connections with package doh/h2: DoH requests
// are answered on each connection's read loop (cache hits) or by do53's
// Responder, everything else by this Server's ServeHTTP, so behaviour stays
// that of the http.Handler.
func (s *Server) useFastH2() error {
	fast, err := h2.NewServer(h2.Config{
		Handler:              s.cfg.Handler,
		Fallback:             s,
		Path:                 s.cfg.Path,
		Metrics:              s.cfg.Metrics,
		Logger:               s.cfg.Logger,
		Listener:             s.cfg.Listener,
		MaxConcurrentStreams: s.cfg.MaxConcurrentStreams,
		IdleTimeout:          s.cfg.IdleTimeout,
		QueryTimeout:         s.cfg.QueryTimeout,
		AltSvc:               s.altSvcValue,
	})
	if err != nil {
		return err
	}
	s.http.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	s.http.TLSNextProto["h2"] = func(_ *http.Server, c *tls.Conn, h http.Handler) {
		ctx := context.Background()
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext() // carries LocalAddrContextKey
		}
		fast.ServeConn(ctx, c)
	}
	// http.Server.Shutdown runs this on a goroutine of its own; Close closes
	// the connections, which ends it.
	s.http.RegisterOnShutdown(func() { fast.Shutdown(context.Background()) })
	return nil
}

// altSvcValue is the Alt-Svc that ServeHTTP would send over HTTP/2.
func (s *Server) altSvcValue() string {
	if s.altSvc != "" {
		return s.altSvc
	}
	if s.h3Running() {
		h := http.Header{}
		s.h3.SetQUICHeaders(h)
		return h.Get("Alt-Svc")
	}
	return ""
}

// wrapListener lets each connection send the answers to what it read in one
// batch of TLS records (h2.WrapListener).
func (s *Server) wrapListener(l net.Listener) net.Listener { return h2.WrapListener(l) }
