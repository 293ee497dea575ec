package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/cache"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/dot"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/upstream"
)

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8853", "DoT listen ip:port")
	cert := fs.String("cert", "", "PEM certificate")
	key := fs.String("key", "", "PEM key")
	up := fs.String("upstream", "", "upstream URL for bench.test")
	maxConns := fs.Int("max-conns", 20000, "connection cap")
	idle := fs.Duration("idle", 10*time.Minute, "idle timeout")
	fs.Parse(args)

	u, err := upstream.Parse(*up, upstream.Options{})
	if err != nil {
		return err
	}
	defer u.Close()
	c, err := cache.New(cache.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	res, err := resolver.New(resolver.Config{
		Routes:     []resolver.Route{{Zone: "bench.test.", Upstream: u}},
		Cache:      c,
		Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer res.Close()
	tp, err := tlsconf.New(tlsconf.Config{CertFile: *cert, KeyFile: *key})
	if err != nil {
		return err
	}
	srv, err := dot.New(dot.Config{
		Config:      do53.Config{Handler: res, Metrics: do53.NewMetrics(reg), Listener: "dot"},
		TLSConfig:   tp.ServerConfig(tlsconf.DoT),
		IdleTimeout: *idle,
		MaxConns:    *maxConns,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "tlsconns: serving DoT on %s (pid %d)\n", *addr, os.Getpid())
	if err := srv.Serve(ln); err != nil && err != do53.ErrServerClosed {
		return err
	}
	return nil
}
