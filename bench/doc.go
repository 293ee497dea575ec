// Package bench measures Lamina against real peers and against its own
// targets. It holds no production code: its Go benchmarks and tests drive
// the real resolver and cache (BenchmarkResolverHit*, TestCacheRSSPerEntry),
// and its scripts (bench/run, bench/tunnel) start Lamina, Unbound, NSD and
// strongSwan side by side and print Lamina's figure, the peer's figure from
// the same run, and their ratio. Results are recorded in bench/RESULTS.md.
//
// Commands: bench/cmd/dnsload is a DoQ/DoT/UDP load client with latency
// percentiles (dnsperf has no DoQ); bench/cmd/tlsconns opens many idle DoT
// connections and reports the server's RSS growth per connection.
//
// Not here: correctness tests of the packages (each package has its own) and
// any timing assertion (the machines are shared and noisy: figures are
// ratios against a peer measured in the same run).
package bench
