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
package upstream
