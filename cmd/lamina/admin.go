package main

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/laminadns/lamina/config"
)

// adminHandler serves the admin endpoints:
//
//	GET  /metrics              Prometheus metrics of every package
//	GET  /healthz              200 while the process runs
//	GET  /readyz               200 once every listener is up, 503 before and while shutting down
//	GET  /status               JSON: listeners and their protection, routes and the path
//	                           they take, tunnels with their SAs, cache stats
//	GET  /layers               JSON: per hop, what protected the traffic (app.withLayers)
//	GET  /status.html          the same as a self-contained HTML page
//	POST /cache/flush          drop every cache entry
//	POST /cache/flush?name=N   drop the entries of one name
//
// POST requests pass auth first.
func adminHandler(h *swapHandler, g prometheus.Gatherer, ready *atomic.Bool, status http.HandlerFunc, auth *adminAuth) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", status)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("POST /cache/flush", func(w http.ResponseWriter, r *http.Request) {
		if !auth.allow(w, r) {
			return
		}
		c := h.gen().cache
		if c == nil {
			http.Error(w, "the cache is disabled", http.StatusNotFound)
			return
		}
		if name := r.URL.Query().Get("name"); name != "" {
			n := c.FlushName(name)
			fmt.Fprintf(w, "flushed %d entries of %s\n", n, name)
			return
		}
		c.Flush()
		fmt.Fprintln(w, "flushed")
	})
	return mux
}

// adminAuth guards the admin endpoints that change state: with a token,
// requests must carry it as a bearer token; without one, only loopback
// clients are served.
type adminAuth struct {
	token  []byte
	denied prometheus.Counter
}

func newAdminAuth(cfg *config.Config, reg prometheus.Registerer) (*adminAuth, error) {
	token, err := secret(cfg, "admin.token", cfg.Admin.TokenFile, cfg.Admin.TokenEnv)
	if err != nil {
		return nil, err
	}
	a := &adminAuth{token: token, denied: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lamina_admin_denied_total",
		Help: "Admin POST requests refused: no or a wrong bearer token, or, without a token configured, not from loopback.",
	})}
	if err := reg.Register(a.denied); err != nil {
		return nil, err
	}
	return a, nil
}

// allow reports whether r may proceed, answering 401 or 403 when not.
func (a *adminAuth) allow(w http.ResponseWriter, r *http.Request) bool {
	if len(a.token) > 0 {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), a.token) == 1 {
			return true
		}
		a.denied.Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="lamina admin"`)
		http.Error(w, "a bearer token is required (admin.token_file or admin.token_env)", http.StatusUnauthorized)
		return false
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Unmap().IsLoopback() {
		return true
	}
	a.denied.Inc()
	http.Error(w, "POST is served to loopback clients only unless admin.token_file or admin.token_env is set", http.StatusForbidden)
	return false
}

// secret reads a secret given as a file (its trailing newline dropped) or
// as an environment variable; both empty is no secret. what names it in
// errors, which never include the secret.
func secret(cfg *config.Config, what, file, env string) ([]byte, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(cfg.Path(file))
		if err != nil {
			return nil, fmt.Errorf("%s_file: %w", what, err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(b) == 0 {
			return nil, fmt.Errorf("%s_file: %s is empty", what, file)
		}
		return b, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s_env: $%s is not set", what, env)
		}
		return []byte(v), nil
	}
	return nil, nil
}
