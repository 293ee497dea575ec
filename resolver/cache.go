package resolver

import "github.com/miekg/dns"

// Freshness says how a cache lookup went. It is an alias of uint8, not a
// defined type, so that a cache can satisfy Cache without importing this
// package (package cache declares the same four values).
type Freshness = uint8

const (
	Miss    Freshness = iota // nothing usable
	Fresh                    // within its TTL
	Refresh                  // within its TTL but due for a prefetch: answer it and refresh in the background
	Stale                    // expired but within the serve-stale window (RFC 8767); TTL 30, EDE 3 already set
)

// Cache is the storage the resolver consults before forwarding; package cache
// provides one. It is declared here, where it is consumed, so that the resolver
// does not depend on any cache implementation; a nil Cache disables caching.
//
// Implementations are safe for concurrent use and never retain or modify the
// messages they are given.
type Cache interface {
	// Get returns a fresh copy of the cached response to req with decayed TTLs
	// and the question's original case. With stale true (upstreams failed) it may
	// return an expired entry within the serve-stale window; with stale false it
	// does so only in stale-while-revalidate mode.
	Get(req *dns.Msg, stale bool) (*dns.Msg, Freshness)

	// AppendWire is Get for the transports' fast path (see WireHandler): raw is
	// the packed query, and the packed response, with raw's ID and question
	// bytes, is appended to dst. It returns Miss rather than exceed max bytes.
	// Stale entries are returned only in stale-while-revalidate mode.
	AppendWire(dst, raw []byte, max int) ([]byte, Freshness)

	// Set offers a response to the cache; the cache decides whether and how long
	// to keep it.
	Set(req, resp *dns.Msg)
}
