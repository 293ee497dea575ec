// Package h2 is a purpose-built HTTP/2 server for DNS over HTTPS (RFC 8484).
//
// Go's general HTTP/2 server hands every stream to its own goroutine and
// every response back through channels to a writer goroutine; under dnsperf
// and h2load that costs most of the time a cached DNS answer takes. Here one
// loop per connection reads frames with golang.org/x/net/http2's Framer
// (HPACK by its hpack package), answers DoH requests that the resolver's
// WireHandler fast path can answer (cache hits) on the loop itself, and
// writes responses through one buffer flushed once per batch of frames read.
// Queries the fast path declines run on a goroutine each, bounded by the
// connection's stream limit, through do53.Responder (the one query path all
// transports share), and write their answers through the same buffer.
//
// Every response ends its own TLS record: dnsperf (and clients built like
// it) take all the DATA one SSL_read returns as one DNS message. With
// crypto/tls each record is a write of its own, so WrapListener, installed
// under the TLS listener, holds a connection's writes while the server works
// through the records it has read and sends them in one syscall when it
// would wait for more.
//
// Workers write their answers themselves, under the connection's lock, and
// flush; handing them to a writer goroutine per connection measured no
// faster (BenchmarkWorkerWrite) and costs a goroutine per connection.
//
// Requests other than a DoH GET (?dns=) or POST (application/dns-message) on
// Config.Path — the JSON API, HEAD, odd methods, malformed DoH requests —
// run Config.Fallback, an ordinary http.Handler, against an in-memory
// ResponseWriter, so their behaviour stays that of the http.Handler.
//
// Not here: TLS (the caller hands over a *tls.Conn that negotiated h2),
// HTTP/1.1 and HTTP/3, server push, priorities, streaming responses.
//
// RFCs: 9113 (HTTP/2, incl. §5.1.2 stream limits, §6.9 flow control), 7541
// (HPACK, via x/net), 8484 (DoH), 8467 (padding: padded queries skip the
// fast path so that do53.Reply pads their answers).
package h2
