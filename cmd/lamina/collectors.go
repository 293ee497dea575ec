package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/cache"
)

// cacheCollector exports the current cache's Stats (package cache is free of
// Prometheus).
type cacheCollector struct {
	h     *swapHandler
	descs map[string]*prometheus.Desc

	// retired sums the counters of caches a reload replaced (new cache
	// settings), so that the exported counters run on instead of falling
	// back to zero.
	mu      sync.Mutex
	retired cache.Stats
}

// retire adds the final counters of a cache a reload replaced.
func (c *cacheCollector) retire(old *cache.Cache) {
	st := old.Stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.retired
	r.Hits += st.Hits
	r.Misses += st.Misses
	r.Stale += st.Stale
	r.Prefetches += st.Prefetches
	r.Evictions += st.Evictions
	r.RedisHits += st.RedisHits
	r.RedisMisses += st.RedisMisses
	r.RedisFailures += st.RedisFailures
}

func newCacheCollector(h *swapHandler) *cacheCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &cacheCollector{h: h, descs: map[string]*prometheus.Desc{
		"hits":       d("lamina_cache_hits_total", "Fresh answers served from the cache."),
		"misses":     d("lamina_cache_misses_total", "Cache lookups that found nothing usable."),
		"stale":      d("lamina_cache_stale_total", "Stale answers served (RFC 8767)."),
		"prefetches": d("lamina_cache_prefetches_total", "Entries signalled for prefetch."),
		"evictions":  d("lamina_cache_evictions_total", "Entries evicted by the entry or byte bound."),
		"entries":    d("lamina_cache_entries", "Entries in the cache."),
		"bytes":      d("lamina_cache_bytes", "Bytes accounted to cache entries."),
		"redis_hits": d("lamina_cache_redis_hits_total", "Answers found in the shared Redis level after a local miss."),
		"redis_miss": d("lamina_cache_redis_misses_total", "Redis lookups that found nothing."),
		"redis_fail": d("lamina_cache_redis_failures_total", "Redis operations that failed, timed out or were skipped while it was down (local-only fallbacks)."),
	}}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.h.cur.Load()
	c.mu.Lock()
	r := c.retired
	c.mu.Unlock()
	var st cache.Stats
	switch {
	case a != nil && a.gen.cache != nil:
		st = a.gen.cache.Stats()
	case r == cache.Stats{}:
		return // no cache, and never was one
	}
	counter := func(k string, v, retired uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[k], prometheus.CounterValue, float64(v+retired))
	}
	counter("hits", st.Hits, r.Hits)
	counter("misses", st.Misses, r.Misses)
	counter("stale", st.Stale, r.Stale)
	counter("prefetches", st.Prefetches, r.Prefetches)
	counter("evictions", st.Evictions, r.Evictions)
	counter("redis_hits", st.RedisHits, r.RedisHits)
	counter("redis_miss", st.RedisMisses, r.RedisMisses)
	counter("redis_fail", st.RedisFailures, r.RedisFailures)
	ch <- prometheus.MustNewConstMetric(c.descs["entries"], prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(c.descs["bytes"], prometheus.GaugeValue, float64(st.Bytes))
}

// tunnelCollector exports each tunnel's Stats (package ipsec is free of
// Prometheus).
type tunnelCollector struct {
	tunnels map[string]*tunnelNet
}

var (
	tunUpDesc      = prometheus.NewDesc("lamina_ipsec_tunnel_up", "1 while the tunnel has an outbound SA.", []string{"tunnel"}, nil)
	tunPacketsDesc = prometheus.NewDesc("lamina_ipsec_packets_total", "ESP packets sealed (out) or opened (in).", []string{"tunnel", "direction"}, nil)
	tunBytesDesc   = prometheus.NewDesc("lamina_ipsec_bytes_total", "Inner bytes sealed (out) or opened (in).", []string{"tunnel", "direction"}, nil)
	tunRekeysDesc  = prometheus.NewDesc("lamina_ipsec_rekeys_total", "Outbound SA replacements.", []string{"tunnel"}, nil)
	tunIKEUpsDesc  = prometheus.NewDesc("lamina_ipsec_ike_established_total", "IKE SAs established.", []string{"tunnel"}, nil)
	tunDropsDesc   = prometheus.NewDesc("lamina_ipsec_drops_total", "Packets dropped, by reason.", []string{"tunnel", "reason"}, nil)
)

func (c *tunnelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tunUpDesc, tunPacketsDesc, tunBytesDesc, tunRekeysDesc, tunIKEUpsDesc, tunDropsDesc} {
		ch <- d
	}
}

func (c *tunnelCollector) Collect(ch chan<- prometheus.Metric) {
	for name, tn := range c.tunnels {
		t := tn.cur.Load()
		if t == nil {
			ch <- prometheus.MustNewConstMetric(tunUpDesc, prometheus.GaugeValue, 0, name)
			continue
		}
		st := t.Stats()
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(tunUpDesc, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(tunPacketsDesc, prometheus.CounterValue, float64(st.Out.Packets), name, "out")
		ch <- prometheus.MustNewConstMetric(tunPacketsDesc, prometheus.CounterValue, float64(st.In.Packets), name, "in")
		ch <- prometheus.MustNewConstMetric(tunBytesDesc, prometheus.CounterValue, float64(st.Out.Bytes), name, "out")
		ch <- prometheus.MustNewConstMetric(tunBytesDesc, prometheus.CounterValue, float64(st.In.Bytes), name, "in")
		ch <- prometheus.MustNewConstMetric(tunRekeysDesc, prometheus.CounterValue, float64(st.Switches), name)
		ch <- prometheus.MustNewConstMetric(tunIKEUpsDesc, prometheus.CounterValue, float64(t.IKEStatus().Ups), name)
		for reason, n := range st.Drops() {
			ch <- prometheus.MustNewConstMetric(tunDropsDesc, prometheus.CounterValue, float64(n), name, reason)
		}
	}
}
