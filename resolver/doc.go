// Package resolver owns the request contract between Lamina's transports and its
// policy, and the policy itself.
//
// Transports (package do53, dot, doh, doq) decode a message, describe where it came
// from in a [Query] and hand it to a [Handler]. The [Resolver] is the Handler that
// applies policy in a fixed order: access control, rate limiting, RFC 8482 ANY,
// locally served data (RFC 6761 localhost, local zones, Lamina's own
// HTTPS/SVCB/DDR records), the cache, then forwarding by longest zone suffix to an
// upstream group.
//
// What it does not do: it never touches sockets, TLS or HTTP (the transports own
// framing, truncation and IDs), and it never imports package cache or ipsec: the
// cache arrives through the [Cache] interface and upstreams through
// [upstream.Upstream], whatever network they dial through.
//
// RFCs: 1034/1035, 2308 (negative answers), 6761 (localhost), 6891 (EDNS),
// 7871 (ECS, stripped), 8482 (ANY), 8914 (Extended DNS Errors), 9462 (DDR).
package resolver
