// Package doq serves DNS over dedicated QUIC connections (RFC 9250) with
// quic-go: ALPN "doq", one query per client-initiated bidirectional stream,
// each message with a 2-byte length prefix, Message ID 0.
//
// Protocol errors close the connection with the RFC 9250 §4.3 codes
// (DOQ_PROTOCOL_ERROR for a non-zero Message ID, a truncated or oversized
// message, a message that is not a query, a query carrying edns-tcp-keepalive,
// or a unidirectional stream);
// queries the policy drops are reset with DOQ_REQUEST_CANCELLED; connections
// beyond the limit are refused with DOQ_EXCESSIVE_LOAD. Stream and connection
// limits and idle timeouts bound what a client can hold open, and the QUIC
// handshake timeout bounds half-open handshakes. A server-wide bound on
// queries being answered (MaxQueries) caps memory across all connections,
// and a connection whose unread answers pass MaxQueued is closed with
// DOQ_EXCESSIVE_LOAD.
//
// 0-RTT is accepted only behind a switch: DoQ queries are idempotent, but
// 0-RTT data can be replayed (RFC 9250 §4.5). ECH works unchanged because
// quic-go runs the handshake with crypto/tls: pass a tls.Config from package
// tlsconf.
//
// DoQ lives in its own package rather than in dot (an open question in the
// style guide) because its framing, limits and error signalling are QUIC's,
// not a byte stream's; what it shares with the other transports (query
// vetting, the cache fast path, response finishing, padding, metrics) is
// do53.Responder, so DoQ answers exactly as Do53 and DoT do. Policy is the
// resolver.Handler's.
package doq
