package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/cache"
	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/upstream"
)

// generation is everything built from one configuration that a reload
// replaces as a whole: the resolver and its upstream groups. The cache is
// carried over to the next generation when its settings did not change.
type generation struct {
	cfg    *config.Config
	res    *resolver.Resolver
	groups []upstream.Upstream
	cache  *cache.Cache
}

// shared is what outlives generations: the process registry, the metrics of
// packages that register once, and the logger.
type shared struct {
	log         *slog.Logger
	reg         *prometheus.Registry
	upMetrics   *upstream.Metrics
	do53Metrics *do53.Metrics
	tls         *tlsconf.Provider // nil without encrypted listeners
	earlyData   bool              // tls.early_data: 0-RTT on DoQ and h3
	tunnels     map[string]*tunnelNet
	layers      *layerStats // per-hop protection counters (GET /layers)
}

// build makes a generation from a validated config. prev, when not nil, is
// the generation being replaced; its cache is reused if cache settings match.
func build(cfg *config.Config, sh *shared, prev *generation) (*generation, error) {
	g := &generation{cfg: cfg}
	ok := false
	defer func() {
		if !ok {
			g.closeGroups()
			if prev == nil || g.cache != prev.cache {
				closeCache(g.cache)
			}
		}
	}()

	byName := map[string]upstream.Upstream{}
	var routes []resolver.Route
	for _, r := range cfg.Routes {
		u, found := byName[r.Group]
		if !found {
			i := slices.IndexFunc(cfg.UpstreamGroups, func(x config.UpstreamGroup) bool { return x.Name == r.Group })
			var err error
			if u, err = buildGroup(cfg, cfg.UpstreamGroups[i], sh, &g.groups); err != nil {
				return nil, err
			}
			byName[r.Group] = u
			g.groups = append(g.groups, u)
		}
		routes = append(routes, resolver.Route{Zone: dns.Fqdn(r.Zone), Upstream: u})
	}

	if !cfg.Cache.Disable {
		if prev != nil && prev.cache != nil && reflect.DeepEqual(prev.cfg.Cache, cfg.Cache) {
			g.cache = prev.cache
		} else {
			cc, err := cacheConfig(cfg.Cache, sh.log)
			if err != nil {
				return nil, err
			}
			c, err := cache.New(cc)
			if err != nil {
				return nil, fmt.Errorf("cache: %w", err)
			}
			g.cache = c
		}
	}

	rc := resolver.Config{
		Routes:        routes,
		LocalZones:    localZones(cfg.LocalZones),
		ACLs:          acls(cfg),
		RateLimit:     rateLimit(cfg.RateLimit),
		RefuseAny:     !cfg.Resolver.ForwardAny,
		SendECS:       cfg.Resolver.SendECS,
		Timeout:       cfg.Resolver.Timeout.D(),
		MaxBackground: cfg.Resolver.MaxBackground,
		Logger:        sh.log,
		LogClientIP:   cfg.Logging.LogClientIP,
		// The process registry: a new generation's resolver takes over
		// the collectors of the one it replaces, so counters run on
		// across reloads rather than restart.
		Registerer:  sh.reg,
		SelfRecords: selfRecords(cfg, sh.tls),
	}
	if g.cache != nil {
		rc.Cache = g.cache
	}
	if cfg.Logging.QueryLog {
		rc.QueryLog = sh.log.With("log", "query")
	}
	res, err := resolver.New(rc)
	if err != nil {
		return nil, err
	}
	g.res = res
	ok = true
	return g, nil
}

// buildGroup makes an upstream.Group from its config. The group owns its
// upstreams; bootstrap upstreams, which the group does not close, are
// appended to owned.
func buildGroup(cfg *config.Config, gc config.UpstreamGroup, sh *shared, owned *[]upstream.Upstream) (upstream.Upstream, error) {
	fail := func(err error) (upstream.Upstream, error) {
		return nil, fmt.Errorf("upstream group %q: %w", gc.Name, err)
	}
	var network upstream.Network
	if gc.Tunnel != "" {
		t := sh.tunnels[gc.Tunnel]
		if t == nil {
			return fail(fmt.Errorf("tunnel %q is not running (tunnels are set up at startup)", gc.Tunnel))
		}
		network = t
	}
	strategy, err := upstream.ParseStrategy(gc.Strategy)
	if err != nil {
		return fail(err)
	}
	ech, err := upstream.ParseECHPolicy(gc.ECH)
	if err != nil {
		return fail(err)
	}
	log := sh.log.With("component", "upstream")
	opts := upstream.Options{
		Network:    network,
		Timeout:    gc.TryTimeout.D(),
		Logger:     log,
		Metrics:    sh.upMetrics,
		ServerName: gc.ServerName,
		CAFile:     cfg.Path(gc.CAFile),
		PinSHA256:  gc.PinSHA256,
		ECH:        ech,
		IPs:        gc.IPs,
	}
	if gc.ECHConfig != "" {
		if opts.ECHConfigList, err = base64.StdEncoding.DecodeString(gc.ECHConfig); err != nil {
			return fail(fmt.Errorf("ech_config: %w", err))
		}
	}
	if len(gc.Bootstrap) > 0 {
		boot, err := newGroup(gc.Name+"/bootstrap", gc.Bootstrap, upstream.Failover, 0,
			upstream.Options{Network: network, Timeout: gc.TryTimeout.D(), Logger: log, Metrics: sh.upMetrics}, sh)
		if err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
		*owned = append(*owned, boot)
		opts.Bootstrap = boot
	}
	grp, err := newGroup(gc.Name, gc.Upstreams, strategy, gc.Stagger.D(), opts, sh)
	if err != nil {
		return fail(err)
	}
	if gc.Timeout > 0 {
		return timeoutUpstream{grp, gc.Timeout.D()}, nil
	}
	return grp, nil
}

// newGroup parses urls with opts into a group; on error nothing stays open.
func newGroup(name string, urls []string, s upstream.Strategy, stagger time.Duration, opts upstream.Options, sh *shared) (*upstream.Group, error) {
	var ups []upstream.Upstream
	closeAll := func() {
		for _, u := range ups {
			u.Close()
		}
	}
	for _, raw := range urls {
		u, err := upstream.Parse(raw, opts)
		if err != nil {
			closeAll()
			return nil, err
		}
		ups = append(ups, u)
	}
	g, err := upstream.NewGroup(upstream.GroupConfig{
		Name:      name,
		Upstreams: ups,
		Strategy:  s,
		Stagger:   stagger,
		Logger:    opts.Logger,
		Metrics:   sh.upMetrics,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return g, nil
}

// timeoutUpstream bounds a whole group exchange (upstream_groups[].timeout),
// which upstream.Group leaves to its caller's context.
type timeoutUpstream struct {
	upstream.Upstream
	d time.Duration
}

func (t timeoutUpstream) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.Upstream.Exchange(ctx, req)
}

func cacheConfig(c config.Cache, log *slog.Logger) (cache.Config, error) {
	cc := cache.Config{
		MaxEntries:           c.Size,
		MaxBytes:             c.Bytes,
		MinTTL:               c.MinTTL.D(),
		MaxTTL:               c.MaxTTL.D(),
		MaxNegTTL:            c.MaxNegativeTTL.D(),
		ServFailTTL:          c.ServFailTTL.D(),
		MaxStale:             c.MaxStale.D(),
		StaleWhileRevalidate: c.StaleWhileRevalidate,
	}
	if !c.ServeStale && !c.StaleWhileRevalidate {
		cc.MaxStale = -1
	}
	if c.DisablePrefetch {
		cc.PrefetchHits = -1
	}
	if r := c.Redis; r.URL != "" {
		u, err := url.Parse(r.URL)
		if err != nil {
			return cc, fmt.Errorf("cache.redis.url: %w", err)
		}
		if r.PasswordEnv != "" {
			pw, ok := os.LookupEnv(r.PasswordEnv)
			if !ok {
				return cc, fmt.Errorf("cache.redis.password_env: $%s is not set", r.PasswordEnv)
			}
			u.User = url.UserPassword(u.User.Username(), pw)
		}
		cc.Redis = &cache.RedisConfig{
			URL:     u.String(),
			Prefix:  r.Prefix,
			Timeout: r.Timeout.D(),
			Logger:  log.With("component", "cache"),
		}
	}
	return cc, nil
}

func localZones(zs []config.LocalZone) []resolver.LocalZone {
	out := make([]resolver.LocalZone, len(zs))
	for i, z := range zs {
		out[i] = resolver.LocalZone{Name: dns.CanonicalName(z.Name), Records: z.RRs}
	}
	return out
}

// acls maps each listener to its ACL. The config says "longest prefix wins,
// deny wins a tie"; the resolver's ACL is first-match, so the rules are sorted
// most specific first.
func acls(cfg *config.Config) map[string]resolver.ACL {
	named := map[string]resolver.ACL{}
	for _, a := range cfg.ACLs {
		named[a.Name] = aclRules(a)
	}
	out := map[string]resolver.ACL{}
	if a, ok := named["*"]; ok {
		out["*"] = a
	}
	for _, l := range cfg.Listeners {
		if l.ACL != "" {
			out[l.Name] = named[l.ACL]
		}
	}
	return out
}

// aclRules orders a config ACL for first-match evaluation: most specific
// prefix first, deny before allow at the same length.
func aclRules(a config.ACL) resolver.ACL {
	var rules resolver.ACL
	for _, p := range a.Deny {
		rules = append(rules, resolver.ACLRule{Prefix: p.Masked()})
	}
	for _, p := range a.Allow {
		rules = append(rules, resolver.ACLRule{Prefix: p.Masked(), Allow: true})
	}
	slices.SortStableFunc(rules, func(x, y resolver.ACLRule) int { return cmp.Compare(y.Prefix.Bits(), x.Prefix.Bits()) })
	return rules
}

func rateLimit(r config.RateLimit) resolver.RateLimit {
	rl := resolver.RateLimit{QPS: r.QPS, Burst: r.Burst, Exempt: r.Exempt}
	if r.Action == "drop" {
		rl.Action = resolver.RateLimitDrop
	}
	return rl
}

// close stops the generation: the resolver, then its groups (which the
// resolver does not own). A cache still used by next is left open.
func (g *generation) close(next *generation) {
	g.res.Close()
	g.closeGroups()
	if next == nil || next.cache != g.cache {
		closeCache(g.cache)
	}
}

func (g *generation) closeGroups() {
	var errs []error
	for _, u := range g.groups {
		errs = append(errs, u.Close())
	}
	_ = errors.Join(errs...)
}

// closeCache closes c's Redis connection, if any.
func closeCache(c *cache.Cache) {
	if c != nil {
		c.Close()
	}
}
