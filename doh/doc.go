// Package doh serves DNS over HTTPS (RFC 8484): HTTP/1.1 and HTTP/2 through
// net/http over TLS, and HTTP/3 through quic-go/http3 on the same port over
// UDP, plus the JSON API (application/dns-json, the ?name=&type= form Google
// and Cloudflare serve).
//
// A [Server] is an http.Handler for its path, so it can also be mounted behind
// another mux. net/http serves HTTP/1.1 and the TLS handshakes; HTTP/2
// connections are handed (via TLSNextProto) to package doh/h2, a purpose-built
// connection loop on x/net/http2's Framer and hpack that answers cache hits on
// the read loop and batches the answers to one read into one write: stock
// net/http's HTTP/2 server reaches a fraction of Unbound's DoH rate under
// dnsperf, this loop more than matches it (see bench/).
//
// It decodes GET (?dns=, base64url, padding tolerated) and POST
// (application/dns-message, at most 65535 bytes) requests, answers with the
// status codes RFC 8484 and HTTP expect (400, 405, 413, 415), sets
// Cache-Control from the answer's smallest TTL (RFC 8484 §5.1) and advertises
// HTTP/3 with Alt-Svc while an HTTP/3 listener runs.
//
// What a query means is not decided here: every query goes to a
// resolver.Handler with Transport HTTPS or HTTP3 and the client's TLS state
// (including whether ECH was accepted). Query vetting, response finishing
// (ID, EDNS, RFC 8467 padding) and metrics are package do53's, shared with
// the other transports. Certificates and ECH keys come from the tls.Config
// the caller passes (package tlsconf).
//
// RFCs: 8484 (DoH), 9113 (HTTP/2), 9114 (HTTP/3), 7838 (Alt-Svc), 8467
// (padding policy), 9250 §4.5 for the 0-RTT reasoning.
package doh
