// Package upstream owns the client side of every DNS transport Lamina forwards
// over: one [Upstream] is one server over one transport (udp://, tcp://, and later
// tls://, https://, h3://, quic://), and a [Group] spreads queries over several
// with a strategy (failover, round_robin, race, fastest) and health tracking.
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
//   - [UDP]: a fresh connected socket (random source port) and a crypto-random
//     ID per try (RFC 5452), retried over TCP on TC (RFC 7766 §5).
//   - [TCP]: reused connections with pipelined queries answered out of order
//     (RFC 7766 §6.2.1.1), a retry on a fresh connection when a reused one was
//     closed under a query (§6.2.3 lets servers close idle connections).
//   - [Group]: strategies, passive health (consecutive failures), active
//     probes with bounded backoff, [ErrAllDown] at once when nothing is up.
//   - [Metrics]: lamina_upstream_* counters, injected, never global.
//
// What it does not do: choose upstreams by zone, cache, synthesise SERVFAIL or
// Extended DNS Errors (the resolver maps [ErrAllDown] and [ErrTimeout]),
// resolve hostnames through the system resolver, or strip ECS (the resolver
// decides what to send).
package upstream
