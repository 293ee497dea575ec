package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/proxy"
	"github.com/laminadns/lamina/upstream"
)

// drainTimeout bounds how long shutdown waits for queries in flight.
const drainTimeout = 10 * time.Second

func serveCmd(args []string, stderr io.Writer) int {
	fs := newFlagSet("serve", "serve [-config FILE] [-listen URL]... [-upstream URL]... [-admin ADDR]", stderr)
	var src source
	fs.StringVar(&src.file, "config", "", "configuration `file` (default: the built-in configs/default.yaml)")
	fs.Var((*stringList)(&src.overrides.Listen), "listen", "listener `URL`, e.g. udp://127.0.0.1:8053 (repeatable; replaces the config's listeners)")
	fs.Var((*stringList)(&src.overrides.Upstream), "upstream", "upstream `URL`, e.g. udp://192.0.2.53 (repeatable; a failover group for \".\", replacing the config's default route)")
	fs.StringVar(&src.overrides.Admin, "admin", "", "admin listener `ip:port` (default from the config, else "+config.DefaultAdminAddress+")")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := src.load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	a := &app{src: src, stderr: stderr, fatal: make(chan error, 16)}
	return a.run(cfg)
}

// app is a running server: the generation behind the swappable handler, the
// listeners, the admin server.
type app struct {
	src    source
	stderr io.Writer
	lv     slog.LevelVar
	sh     *shared
	h      swapHandler
	ready  atomic.Bool
	fatal  chan error // a listener failed for good after starting

	mu        sync.Mutex // serialises reloads and shutdown
	listeners map[string]*listener
	proxies   []*proxy.Server
	admin     *http.Server

	cacheStats *cacheCollector
}

func (a *app) run(cfg *config.Config) int {
	var err error
	// Signals are caught from the start: a SIGHUP during startup must not
	// kill the process, and a SIGTERM then is handled once serving.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	log := newLogger(cfg.Logging, a.stderr, &a.lv)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.sh = &shared{log: log, reg: reg, upMetrics: upstream.NewMetrics(reg), do53Metrics: do53.NewMetrics(reg), layers: newLayerStats()}
	a.cacheStats = newCacheCollector(&a.h)
	reg.MustRegister(a.cacheStats)
	if needsTLS(cfg) {
		a.sh.earlyData = cfg.TLS.EarlyData
		if a.sh.tls, err = newTLSProvider(cfg, log); err != nil {
			fmt.Fprintf(a.stderr, "lamina: tls: %v\n", err)
			return exitConfig
		}
	}

	a.sh.tunnels = map[string]*tunnelNet{}
	for _, tc := range cfg.Tunnels {
		tn, err := startTunnel(cfg, tc, log)
		if err != nil {
			fmt.Fprintf(a.stderr, "lamina: %v\n", err)
			a.closeTunnels()
			return exitConfig
		}
		a.sh.tunnels[tc.Name] = tn
	}
	if len(cfg.Tunnels) > 0 {
		reg.MustRegister(&tunnelCollector{tunnels: a.sh.tunnels})
	}
	g, err := build(cfg, a.sh, nil)
	if err != nil {
		fmt.Fprintf(a.stderr, "lamina: %v\n", err)
		a.closeTunnels()
		return exitConfig
	}
	a.h.swap(g)
	ctx := context.Background()

	if !cfg.Admin.Disable {
		addr := cfg.Admin.Address
		if addr == "" {
			addr = config.DefaultAdminAddress
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			fmt.Fprintf(a.stderr, "lamina: admin listener: %v\n", err)
			a.stop(time.Second)
			return exitRuntime
		}
		auth, err := newAdminAuth(cfg, reg)
		if err != nil {
			ln.Close()
			fmt.Fprintf(a.stderr, "lamina: admin: %v\n", err)
			a.stop(time.Second)
			return exitRuntime
		}
		a.admin = &http.Server{Handler: a.withLayers(adminHandler(&a.h, reg, &a.ready, statusHandler(&a.h, a.sh.tls, a.sh.tunnels), auth)), ReadHeaderTimeout: 5 * time.Second}
		go a.admin.Serve(ln)
		log.Info("admin listening", "address", ln.Addr().String())
	}

	a.listeners = map[string]*listener{}
	for _, l := range cfg.Listeners {
		rl, err := startListener(ctx, l, a.sh.layers.handler(&a.h), a.sh, a.fatal)
		if err != nil {
			fmt.Fprintf(a.stderr, "lamina: %v\n", err)
			a.stop(time.Second)
			return exitRuntime
		}
		a.listeners[listenerKey(l)] = rl
		log.Info("listening", "listener", l.Name, "url", l.URL)
	}
	for _, pc := range cfg.Proxies {
		srv, err := startProxy(ctx, cfg, pc, &a.h, a.sh, reg)
		if err != nil {
			fmt.Fprintf(a.stderr, "lamina: %v\n", err)
			a.stop(time.Second)
			return exitRuntime
		}
		a.proxies = append(a.proxies, srv)
	}
	a.ready.Store(true)
	log.Info("lamina serving", "version", versionString(), "config", cmpName(cfg.File()))

	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if err := a.reload(); err != nil {
					log.Error("reload failed, the previous configuration keeps serving", "err", err.Error())
				}
				continue
			}
			log.Info("shutting down", "signal", s.String())
			if !a.stop(drainTimeout) {
				log.Warn("drain deadline passed; queries still in flight were cancelled")
			}
			log.Info("stopped")
			return exitOK
		case err := <-a.fatal:
			log.Error("listener failed", "err", err.Error())
			a.stop(time.Second)
			return exitRuntime
		}
	}
}

func cmpName(file string) string {
	if file == "" {
		return "flags"
	}
	return file
}

// stop shuts every listener down, letting in-flight queries finish within d,
// then closes the generation and the admin server. It reports whether the
// drain finished in time.
func (a *app) stop(d time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var late atomic.Bool
	for _, l := range a.listeners {
		wg.Go(func() {
			if l.shutdown(ctx) != nil {
				late.Store(true)
			}
		})
	}
	wg.Wait()
	for _, p := range a.proxies {
		p.Close()
	}
	if cur := a.h.cur.Load(); cur != nil {
		cur.gen.close(nil)
	}
	a.closeTunnels()
	if a.admin != nil {
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		a.admin.Shutdown(actx)
		acancel()
	}
	return !late.Load()
}

// reload reads the configuration again and, if it is valid and builds, puts
// it in service without dropping a query: new listeners are started, the
// handler swapped, listeners no longer configured drained and stopped, and the
// old generation closed once the queries inside it are done.
func (a *app) reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	log := a.sh.log
	cfg, err := a.src.load()
	if err != nil {
		return err
	}
	cur := a.h.gen()
	if !reflect.DeepEqual(cfg.Admin, cur.cfg.Admin) || cfg.Logging.Format != cur.cfg.Logging.Format ||
		!reflect.DeepEqual(cfg.TLS, cur.cfg.TLS) || !reflect.DeepEqual(cfg.Tunnels, cur.cfg.Tunnels) ||
		!reflect.DeepEqual(cfg.Proxies, cur.cfg.Proxies) {
		log.Warn("admin, logging.format, tls, tunnels and proxies changes take effect at the next restart")
	}
	if needsTLS(cfg) && a.sh.tls == nil {
		return errors.New("the first encrypted listener needs a restart (TLS is set up at startup)")
	}
	if a.sh.tls != nil {
		// Certificate and ECH key files are re-read; a failure keeps the
		// material already loaded.
		if err := a.sh.tls.Reload(); err != nil {
			log.Warn("reloading TLS material", "err", err.Error())
		}
	}
	g, err := build(cfg, a.sh, cur)
	if err != nil {
		return err
	}

	want := map[string]bool{}
	for _, l := range cfg.Listeners {
		want[listenerKey(l)] = true
	}
	// Listeners going away that hold a socket a new one needs are stopped
	// first; the others keep serving until after the swap.
	newSocks := map[string]bool{}
	for _, l := range cfg.Listeners {
		if a.listeners[listenerKey(l)] == nil {
			newSocks[socketKey(l)] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var removed []*listener
	var stopped []config.Listener // stopped early to free their sockets
	for k, l := range a.listeners {
		if want[k] {
			continue
		}
		delete(a.listeners, k)
		if newSocks[socketKey(l.cfg)] {
			l.shutdown(ctx)
			stopped = append(stopped, l.cfg)
			log.Info("listener stopped", "listener", l.cfg.Name)
		} else {
			removed = append(removed, l)
		}
	}
	var started []string
	for _, l := range cfg.Listeners {
		k := listenerKey(l)
		if a.listeners[k] != nil {
			continue
		}
		rl, err := startListener(context.Background(), l, a.sh.layers.handler(&a.h), a.sh, a.fatal)
		if err != nil {
			a.rollback(ctx, started, stopped, removed)
			g.close(cur)
			return err
		}
		a.listeners[k] = rl
		started = append(started, k)
		log.Info("listening", "listener", l.Name, "url", l.URL)
	}
	old := a.h.swap(g)
	if oc := old.gen.cache; oc != nil && oc != g.cache {
		a.cacheStats.retire(oc)
	}
	a.lv.Set(level(cfg.Logging.Level))
	for _, l := range removed {
		l.shutdown(ctx)
		log.Info("listener stopped", "listener", l.cfg.Name)
	}
	retire(old, g, cfg.Resolver.Timeout.D()+do53.DefaultQueryTimeout)
	log.Info("configuration reloaded", "config", cmpName(cfg.File()))
	return nil
}

// rollback puts the listeners back as they were before a reload that
// failed to start one: the ones it started stop, the ones it stopped to
// free their sockets start again, and the ones it meant to remove stay.
// A listener that cannot be restarted (its port taken meanwhile) is
// logged as an error; the others serve on.
func (a *app) rollback(ctx context.Context, started []string, stopped []config.Listener, removed []*listener) {
	log := a.sh.log
	for _, k := range started {
		l := a.listeners[k]
		delete(a.listeners, k)
		l.shutdown(ctx)
		log.Info("listener stopped", "listener", l.cfg.Name, "reason", "reload failed")
	}
	for _, lc := range stopped {
		rl, err := startListener(context.Background(), lc, a.sh.layers.handler(&a.h), a.sh, a.fatal)
		if err != nil {
			log.Error("listener not restored after a failed reload", "listener", lc.Name, "url", lc.URL, "err", err.Error())
			continue
		}
		a.listeners[listenerKey(lc)] = rl
		log.Info("listener restored", "listener", lc.Name, "url", lc.URL)
	}
	for _, l := range removed {
		a.listeners[listenerKey(l.cfg)] = l
	}
}

// socketKey is the socket a listener binds.
func socketKey(l config.Listener) string {
	return socketProto(l.Parsed.Scheme) + " " + l.Parsed.Addr.String()
}

func socketProto(scheme string) string {
	switch scheme {
	case "udp", "h3", "quic":
		return "udp"
	}
	return "tcp"
}

// closeTunnels deletes the IKE SAs and closes the tunnels.
func (a *app) closeTunnels() {
	var wg sync.WaitGroup
	for _, t := range a.sh.tunnels {
		wg.Go(t.close)
	}
	wg.Wait()
}
