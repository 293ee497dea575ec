// Package do53 is Lamina's client-facing DNS wire layer: the Do53 listeners
// over UDP ([Server]) and TCP ([StreamServer]), the stream server that DoT runs
// over a TLS listener, and the code every transport (Do53, DoT, DoH, DoQ)
// shares to vet a query ([ParseQuery], [MaxSize]), finish a response
// ([Reply]) and count it ([Metrics]), or all of that at once for one raw
// query ([Responder]).
//
// # Why do53 owns stream framing
//
// miekg/dns's Server reads a query from a TCP connection, handles it, writes
// the answer and only then reads the next one, so pipelined queries wait
// behind a slow one. RFC 7766 §6.2.1.1 asks servers to process pipelined
// queries concurrently and allows answers out of order, and DoT (RFC 7858)
// inherits that. StreamServer therefore frames the stream itself: one reader
// per connection, handlers running concurrently up to a per-connection and a
// server-wide bound (readers wait for a slot), and one writer sending each
// answer as soon as it is ready; a client leaving more than MaxQueued bytes
// of answers unread is disconnected, so slow readers cannot pin memory across
// MaxConns connections. Package dot
// reuses it with a TLS listener and resolver.TLS instead of duplicating it.
// miekg/dns is used only to decode and encode messages.
//
// # Fast path
//
// A Handler that also implements resolver.WireHandler (the cache) is offered
// each plain query as raw bytes before anything is decoded; an answer from
// ServeWire is written from per-socket (UDP) or pooled (stream) buffers
// without allocation. The EDNS work Reply would do, the keepalive option on
// TCP and DoT and padding on encrypted transports, is done on the packed
// answer. On Linux the UDP sockets move batches with recvmmsg and sendmmsg.
// Everything else is decoded and handed to ServeDNS with a deadline, on
// pooled goroutines.
//
// # What it does not do
//
// No policy (ACLs, rate limits, routing, caching): that is the Handler's.
// No TLS configuration or certificates: callers pass a listener that yields
// *tls.Conn. No DoH or DoQ framing: those packages use ParseQuery, Reply and
// Metrics, or a Responder.
//
// # RFCs
//
// RFC 1035 §4.2 (UDP and TCP framing), RFC 7766 (DNS over TCP: pipelining,
// out-of-order answers, idle timeouts), RFC 7858 (DoT), RFC 6891 (EDNS(0)),
// RFC 7828 (edns-tcp-keepalive), RFC 7830 and RFC 8467 (padding), RFC 2181 §9
// (truncation), RFC 8914 (Extended DNS Errors, via package resolver).
package do53
