package resolver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/upstream"
)

// Config is the whole policy of a [Resolver]. It is read once by [New], which
// validates it and copies what it keeps; later changes have no effect.
// Every field's zero value is usable.
type Config struct {
	// Routes send queries to upstreams by longest zone suffix. Zero routes
	// means nothing is forwarded: every query that local data does not answer
	// gets REFUSED with EDE 20 (Not Authoritative).
	Routes []Route

	// LocalZones are answered authoritatively (AA set) and take precedence
	// over routes. A zone without an SOA record gets a synthetic one, used for
	// negative answers (RFC 2308).
	LocalZones []LocalZone

	// ACLs maps a listener name (Query.Listener) to its access list. The key
	// "*" applies to listeners that have no entry of their own. Listeners
	// with neither get [DefaultACL]: loopback and private ranges only, so
	// Lamina is never an open resolver by accident. A query without a valid
	// Query.Client matches no rule and is refused.
	ACLs map[string]ACL

	// RateLimit limits queries per client network; the zero value is off.
	RateLimit RateLimit

	// RefuseAny answers every ANY query (outside local zones) with the RFC
	// 8482 synthetic HINFO instead of forwarding it. Off by default.
	RefuseAny bool

	// Cache, when non-nil, is consulted before forwarding and filled with
	// upstream answers. Nil disables caching.
	Cache Cache

	// SelfRecords returns the records Lamina publishes about itself (HTTPS for
	// its service name, SVCB for _dns.<name> and _dns.resolver.arpa, RFC
	// 9461/9462). A query whose name and type match one of them is answered
	// with them authoritatively. It is called for every query that reaches
	// ServeDNS, so it must be cheap and safe for concurrent use; the resolver
	// never modifies what it returns. The records may change (ECH rotation),
	// their owner names may not: New reads them once so that the cache fast
	// path leaves those names to ServeDNS. Nil means none: _dns.resolver.arpa
	// then answers NODATA (never forwarded).
	SelfRecords func() []dns.RR

	// SendECS opts in to sending EDNS Client Subnet (RFC 7871) upstream: the
	// client's own ECS option if it sent one (SOURCE PREFIX-LENGTH 0 means no
	// ECS), otherwise its public address, truncated to at most /24 (IPv4) or
	// /56 (IPv6). Off by default: client options are never forwarded. The cache
	// is not keyed on ECS.
	SendECS bool

	// Timeout bounds each upstream exchange, including the background ones.
	// Zero means 5 s.
	Timeout time.Duration

	// StaleAfter is RFC 8767's client response timer: when an upstream has
	// not answered after this long and the cache holds an expired answer, the
	// client gets that (the exchange goes on and refreshes the cache). Zero
	// means 1.8 s, the RFC's suggestion; negative waits for the exchange.
	StaleAfter time.Duration

	// MaxBackground bounds concurrent background refreshes (prefetch and
	// stale-while-revalidate); refreshes beyond it are skipped. Zero means 64.
	MaxBackground int

	// Logger receives lifecycle messages, and per-query detail at Debug. Nil
	// discards.
	Logger *slog.Logger

	// QueryLog, when non-nil, gets one Info record per answered query (name,
	// type, transport, rcode, source; duration except for fast-path cache
	// hits). Nil turns the query log off.
	QueryLog *slog.Logger

	// LogClientIP adds the client's network (/24 for IPv4, /48 for IPv6, as
	// RFC 8932 suggests) to query log records. Off by default.
	LogClientIP bool

	// Registerer receives the resolver's metrics. Nil means no metrics.
	Registerer prometheus.Registerer
}

// Route forwards a zone and everything under it to an upstream (typically an
// upstream.Group). Matching is label-aware and case-insensitive: zone
// "corp.example." matches "a.CORP.example." but not "xcorp.example.".
type Route struct {
	Zone     string // FQDN; "" and "." both mean the default route
	Upstream upstream.Upstream
}

// RateLimitAction is what happens to a query over its client's rate.
type RateLimitAction uint8

const (
	RateLimitRefuse RateLimitAction = iota // answer REFUSED with EDE 18 (the zero value)
	RateLimitDrop                          // send nothing
)

// RateLimit is a token bucket per client network: /24 for IPv4, /56 for
// IPv6. The table of buckets is an LRU bounded by MaxClients, so a flood of
// spoofed sources cannot grow memory.
type RateLimit struct {
	QPS        float64         // refill rate per client network; 0 disables rate limiting
	Burst      int             // bucket size; 0 means max(1, QPS)
	Action     RateLimitAction // refuse (default) or drop
	Exempt     []netip.Prefix  // clients never limited
	MaxClients int             // buckets kept; 0 means 65536
}

// timeout returns the effective exchange timeout.
func (c *Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 5 * time.Second
	}
	return c.Timeout
}

// staleAfter returns the effective client response timer, 0 for none.
func (c *Config) staleAfter() time.Duration {
	switch {
	case c.StaleAfter < 0:
		return 0
	case c.StaleAfter == 0:
		return 1800 * time.Millisecond
	}
	return c.StaleAfter
}

func (c *Config) validate() error {
	var errs []error
	if c.RateLimit.QPS < 0 || c.RateLimit.Burst < 0 || c.RateLimit.MaxClients < 0 {
		errs = append(errs, errors.New("rate limit: negative value"))
	}
	if c.RateLimit.Action > RateLimitDrop {
		errs = append(errs, fmt.Errorf("rate limit: unknown action %d", c.RateLimit.Action))
	}
	for _, p := range c.RateLimit.Exempt {
		if !p.IsValid() {
			errs = append(errs, errors.New("rate limit: invalid exempt prefix"))
		}
	}
	for name, acl := range c.ACLs {
		for i, r := range acl {
			if !r.Prefix.IsValid() {
				errs = append(errs, fmt.Errorf("acl %q rule %d: invalid prefix", name, i))
			}
		}
	}
	if c.Timeout < 0 || c.MaxBackground < 0 {
		errs = append(errs, errors.New("negative timeout or max background"))
	}
	return errors.Join(errs...)
}
