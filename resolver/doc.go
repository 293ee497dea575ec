// Package resolver owns the request contract between Lamina's transports and its
// policy, and the policy itself.
//
// Transports (package do53, dot, doh, doq) decode a message, describe where it came
// from in a [Query] and hand it to a [Handler]. The [Resolver] is the Handler that
// applies policy in a fixed order: access control (per listener), rate limiting
// (per /24 or /56), sanity checks, Lamina's own HTTPS/SVCB/DDR records,
// locally served zones (configured zones; RFC 6761 localhost and invalid; RFC
// 6303 private reverse zones and home.arpa unless routed; resolver.arpa, which
// is never forwarded), RFC 8482 ANY, the cache (with prefetch and
// stale-while-revalidate), then forwarding by longest zone suffix to an
// upstream group, with identical in-flight queries coalesced and serve-stale
// (RFC 8767) when upstreams fail.
//
// Cache hits have a fast path, [WireHandler]: the Resolver checks the ACL, the
// rate limit and the question on the packed query, without decoding or
// allocating, and lets the cache append its packed answer.
//
// What it does not do: it never touches sockets, TLS or HTTP (the transports own
// framing, truncation, padding and IDs), and it never imports package cache or
// ipsec: the cache arrives through the [Cache] interface and upstreams through
// [upstream.Upstream], whatever network they dial through. Upstream queries are
// built afresh, so no client EDNS option (ECS, cookies, padding) leaks upstream.
//
// RFCs: 1034/1035, 2308 (negative answers), 4592 (wildcards), 6303 (locally
// served zones), 6761 (special-use names), 6891 (EDNS), 7686 (onion), 7871
// (ECS, stripped), 8375 (home.arpa), 8482 (ANY), 8767 (serve-stale), 8914
// (Extended DNS Errors), 8932 (privacy of logs), 9462 (DDR).
package resolver
