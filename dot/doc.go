// Package dot serves DNS over TLS (RFC 7858): package do53's RFC 7766 stream
// server (pipelining, out-of-order answers, idle and read timeouts, connection
// and in-flight limits, edns-tcp-keepalive) over a TLS listener, with queries
// marked resolver.TLS and carrying the client's TLS state, including whether
// Encrypted Client Hello was accepted.
//
// It owns only the TLS wrapping: framing and response finishing are do53's,
// certificates, ALPN "dot" and ECH keys come from the tls.Config the caller
// passes (package tlsconf), and policy is the resolver.Handler's.
//
// RFCs: 7858 (DoT), 8310 (usage profiles; ALPN "dot" offered, not required),
// 7766 (DNS over TCP), 7828 (keepalive), 8467 (padding).
package dot
