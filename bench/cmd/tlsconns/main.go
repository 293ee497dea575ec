// Command tlsconns measures a DoT server's memory per idle connection: it
// opens -n TLS connections, asks one query on each (so the server has set
// up everything a served client costs), leaves them idle, and reports the
// server's RSS growth per connection read from /proc/PID/status, together
// with the growth of the server's open file descriptors as proof that the
// connections are really held open.
//
//	tlsconns dial -addr 127.0.0.1:853 -pid PID -n 10000 -label lamina
//	tlsconns serve -addr 127.0.0.1:8853 -cert C -key K -upstream udp://...
//
// serve runs Lamina's DoT listener (packages dot, tlsconf, resolver, cache,
// upstream, as cmd/lamina assembles them) with its connection cap and idle
// timeout raised: the binary's config does not expose them, and its defaults
// (1000 connections, 10 s idle) would close most of the 10k connections.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsconns dial|serve [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dial":
		err = dial(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsconns:", err)
		os.Exit(1)
	}
}
