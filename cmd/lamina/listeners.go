package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
)

// listener is one running frontend. Listeners outlive reloads when their
// configuration is unchanged: they hold the swappable handler, not a resolver.
type listener struct {
	cfg      config.Listener
	shutdown func(ctx context.Context) error
	close    func() error
}

// key identifies a listener across reloads: the same key keeps running.
func listenerKey(l config.Listener) string {
	return l.Name + "\x00" + l.Parsed.Scheme + "://" + l.Parsed.Addr.String() + l.Parsed.Path
}

// startListener binds l's socket and serves h on it. Serve errors after a
// successful start (a socket failing for good) are sent to fatal.
func startListener(ctx context.Context, l config.Listener, h resolver.Handler, sh *shared, fatal chan<- error) (*listener, error) {
	base := do53.Config{
		Handler:  h,
		Logger:   sh.log.With("component", "do53"),
		Metrics:  sh.do53Metrics,
		Listener: l.Name,
	}
	addr := l.Parsed.Addr.String()
	serve := func(run func() error) {
		go func() {
			if err := run(); err != nil && !errors.Is(err, do53.ErrServerClosed) {
				fatal <- fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}()
	}
	switch l.Parsed.Scheme {
	case "udp":
		srv, err := do53.NewServer(base)
		if err != nil {
			return nil, err
		}
		pcs, err := do53.ListenUDP(ctx, addr, 0)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		serve(func() error { return srv.Serve(pcs...) })
		return &listener{cfg: l, shutdown: srv.Shutdown, close: srv.Close}, nil
	case "tcp":
		srv, err := do53.NewStreamServer(do53.StreamConfig{Config: base, Transport: resolver.TCP})
		if err != nil {
			return nil, err
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		serve(func() error { return srv.Serve(ln) })
		return &listener{cfg: l, shutdown: srv.Shutdown, close: srv.Close}, nil
	case "tls":
		srv, err := do53.NewStreamServer(do53.StreamConfig{Config: base, Transport: resolver.TLS})
		if err != nil {
			return nil, err
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		tln := tls.NewListener(ln, sh.tls.ServerConfig(tlsconf.DoT))
		serve(func() error { return srv.Serve(tln) })
		return &listener{cfg: l, shutdown: srv.Shutdown, close: srv.Close}, nil
	}
	return nil, fmt.Errorf("listener %s: %s:// listeners are not available in this build yet", l.Name, l.Parsed.Scheme)
}
