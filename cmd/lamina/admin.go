package main

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
func adminHandler(h *swapHandler, g prometheus.Gatherer, ready *atomic.Bool, status http.HandlerFunc) http.Handler {
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
