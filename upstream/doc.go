// Package upstream owns the client side of every DNS transport Lamina forwards
// over: one [Upstream] is one server over one transport (udp://, tcp://,
// tls://, https://, h3://, quic://, built by [Parse]), and a [Group] spreads
// queries over several with a strategy (failover, round_robin, race, fastest)
// and health tracking.
//
// Every upstream dials through a [Network], so the same code runs over the host's
// sockets or inside the IPsec tunnel. The package knows nothing of policy or
// caching and imports nothing else from Lamina.
//
// Contract shared by all upstreams: the request is never modified; a response is
// accepted only when its ID and question match the request (RFC 5452 §9.1),
// anything else is dropped and counted; ctx bounds every exchange.
//
// What it does:
//   - [UDP]: connected sockets whose random source port changes every few
//     queries, a crypto-random ID per try (RFC 5452), retried over TCP on TC
//     (RFC 7766 §5).
//   - [TCP] and [DoT] (RFC 7858): reused connections with pipelined queries
//     answered out of order (RFC 7766 §6.2.1.1), a retry on a fresh connection
//     when a reused one was closed under a query (§6.2.3 lets servers close
//     idle connections).
//   - [DoH] (RFC 8484): POST with ID 0 over HTTP/2 (one connection, many
//     streams), HTTP/1.1 when the server has no h2, or HTTP/3 (RFC 9114).
//   - [DoQ] (RFC 9250): one QUIC connection, one stream per query, ID 0.
//   - TLS: session resumption, CA file, SPKI pins, ECH with retry configs and
//     a require/opportunistic/off policy, queries padded to 128-byte blocks
//     (RFC 8467).
//   - Hostnames resolved through bootstrap upstreams or fixed IPs, re-resolved
//     on TTL; ECH configs discovered from SVCB/HTTPS records (RFC 9461,
//     RFC 9460); designated resolvers of a Do53 server ([DiscoverDesignated],
//     RFC 9462).
//   - [Group]: strategies, passive health (consecutive failures), active
//     probes with bounded backoff, [ErrAllDown] at once when nothing is up.
//   - [Metrics]: lamina_upstream_* counters, injected, never global.
//
// What it does not do: choose upstreams by zone, cache, synthesise SERVFAIL or
// Extended DNS Errors (the resolver maps [ErrAllDown] and [ErrTimeout]),
// resolve hostnames through the system resolver, or strip ECS (the resolver
// decides what to send).
package upstream
