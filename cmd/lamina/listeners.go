package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/doh"
	"github.com/laminadns/lamina/doq"
	"github.com/laminadns/lamina/dot"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
)

// listener is one running frontend. Listeners outlive reloads when their
// configuration is unchanged: they hold the swappable handler, not a resolver.
type listener struct {
	cfg      config.Listener
	stopping atomic.Bool                     // Serve errors after this are the expected ones
	stop     func(ctx context.Context) error // drains, then closes everything
	serving  sync.WaitGroup                  // the Serve goroutines
}

// shutdown stops accepting, lets queries in flight be answered until ctx
// ends, then closes everything. It returns once every Serve has returned
// (or ctx ends): a server shut down before its Serve goroutine ran closes
// the sockets only when Serve starts, and a reload that binds the same
// address next must not find them still open.
func (l *listener) shutdown(ctx context.Context) error {
	l.stopping.Store(true)
	err := l.stop(ctx)
	done := make(chan struct{})
	go func() {
		l.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = cmp.Or(err, ctx.Err())
	}
	return err
}

// key identifies a listener across reloads: the same key keeps running.
func listenerKey(l config.Listener) string {
	return fmt.Sprintf("%s\x00%s://%s%s\x00%d\x00%v", l.Name, l.Parsed.Scheme, l.Parsed.Addr, l.Parsed.Path, l.MaxConns, l.IdleTimeout.D())
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
	rl := &listener{cfg: l}
	serve := func(run func() error) {
		rl.serving.Add(1)
		go func() {
			defer rl.serving.Done()
			err := run()
			if err != nil && !rl.stopping.Load() {
				fatal <- fmt.Errorf("listener %s: %w", l.Name, err)
			}
		}()
	}
	wrap := func(err error) error { return fmt.Errorf("listener %s: %w", l.Name, err) }
	var lc net.ListenConfig
	scheme := l.Parsed.Scheme
	if scheme != "udp" && scheme != "tcp" && sh.tls == nil {
		return nil, wrap(errors.New("no TLS provider (encrypted listeners are set up at startup)"))
	}

	switch scheme {
	case "udp":
		srv, err := do53.NewServer(base)
		if err != nil {
			return nil, wrap(err)
		}
		pcs, err := do53.ListenUDP(ctx, addr, 0)
		if err != nil {
			return nil, wrap(err)
		}
		serve(func() error { return srv.Serve(pcs...) })
		rl.stop = srv.Shutdown

	case "tcp":
		srv, err := do53.NewStreamServer(do53.StreamConfig{Config: base, Transport: resolver.TCP,
			MaxConns: l.MaxConns, IdleTimeout: l.IdleTimeout.D()})
		if err != nil {
			return nil, wrap(err)
		}
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, wrap(err)
		}
		serve(func() error { return srv.Serve(ln) })
		rl.stop = srv.Shutdown

	case "tls":
		base.Logger = sh.log // dot names its component itself
		srv, err := dot.New(dot.Config{Config: base, TLSConfig: sh.tls.ServerConfig(tlsconf.DoT),
			MaxConns: l.MaxConns, IdleTimeout: l.IdleTimeout.D()})
		if err != nil {
			return nil, wrap(err)
		}
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, wrap(err)
		}
		serve(func() error { return srv.Serve(ln) })
		rl.stop = srv.Shutdown

	case "https", "h3":
		proto := tlsconf.DoH
		if scheme == "h3" {
			proto = tlsconf.H3
		}
		srv, err := doh.New(doh.Config{
			Handler:   h,
			TLSConfig: sh.tls.ServerConfig(proto),
			Path:      l.Parsed.Path,
			Listener:  l.Name,
			Logger:    sh.log,
			Metrics:   sh.do53Metrics,
			Allow0RTT: sh.earlyData,

			MaxConns:    l.MaxConns,
			IdleTimeout: l.IdleTimeout.D(),
		})
		if err != nil {
			return nil, wrap(err)
		}
		if scheme == "https" {
			ln, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return nil, wrap(err)
			}
			serve(func() error { return srv.Serve(ln) })
			rl.stop = srv.Shutdown
			break
		}
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, wrap(err)
		}
		serve(func() error { return srv.ServeH3(pc) })
		rl.stop = func(ctx context.Context) error { defer pc.Close(); return srv.Shutdown(ctx) }

	case "quic":
		srv, err := doq.New(doq.Config{
			Handler:   h,
			TLSConfig: sh.tls.ServerConfig(tlsconf.DoQ),
			Listener:  l.Name,
			Logger:    sh.log,
			Metrics:   sh.do53Metrics,
			Allow0RTT: sh.earlyData,

			MaxConns:    l.MaxConns,
			IdleTimeout: l.IdleTimeout.D(),
		})
		if err != nil {
			return nil, wrap(err)
		}
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, wrap(err)
		}
		serve(func() error { return srv.Serve(pc) })
		rl.stop = func(ctx context.Context) error { defer pc.Close(); return srv.Shutdown(ctx) }

	default:
		return nil, wrap(fmt.Errorf("unknown scheme %q", scheme))
	}
	return rl, nil
}
