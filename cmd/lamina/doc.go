// Command lamina is an encrypted DNS resolver and forwarder.
//
//	lamina serve [-config FILE] [-listen URL]... [-upstream URL]... [-admin ADDR]
//	lamina check -config FILE
//	lamina ech keygen [-config FILE] [-state-dir DIR] [-public-name NAME]
//	lamina query [-server URL] [-type T] [-ca FILE] [-ech B64|-ech-from-dns] [-trace [-admin ADDR]] NAME
//	lamina version
//
// With no -config and no flags, serve runs the embedded default configuration
// (configs/default.yaml): Do53 on 127.0.0.1:8053 (UDP and TCP), localhost and
// a home.arpa zone served locally, everything else forwarded to public
// resolvers, the admin listener on 127.0.0.1:9153.
//
// Exit status: 0 after a clean shutdown, 1 for a runtime failure (a port in
// use, say), 2 for a bad configuration or bad usage.
//
// This package owns the wiring and nothing else: it reads the configuration
// (package config), builds one prometheus.Registry and one slog.Logger and
// hands them to every package, starts the listeners (do53, dot, doh, doq),
// the tunnels (ipsec) and proxies, and runs the process's lifecycle:
// SIGHUP rebuilds the resolver and its upstream groups from the file and
// swaps them in atomically (the cache is kept when its settings did not
// change; listeners are started or stopped as the file says); SIGTERM and
// SIGINT stop accepting, let queries in flight finish within 10 s, and exit 0.
// The admin listener serves /metrics, /healthz, /readyz, /status and
// POST /cache/flush.
package main
