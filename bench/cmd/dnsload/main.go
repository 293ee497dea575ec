// Command dnsload is a small DNS load generator for the transport dnsperf
// lacks (DoQ, RFC 9250), with the same load shape over DoT and TCP so that
// DoQ can be set beside a peer under one client. Like dnsperf it runs -c
// connections with -q queries outstanding in total, reading names from a
// dnsperf-style file ("name TYPE" per line) for -d seconds or -n passes.
//
// With -pid it also reads the server's CPU time from /proc and reports CPU
// microseconds per answered query: a figure that does not depend on how fast
// the client itself is (client and server share the cores).
//
// It prints one line on stdout, "qps lost p50_ms p99_ms cpu_us_per_query",
// and a readable summary on stderr. Certificates are not verified (dnsperf
// does not either): it measures servers, it protects nothing.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

type options struct {
	proto, addr, names string
	conns, outstanding int
	duration, timeout  time.Duration
	runs, pid          int
}

func main() {
	var o options
	flag.StringVar(&o.proto, "proto", "doq", "udp | tcp | dot | doq")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:853", "server ip:port")
	flag.StringVar(&o.names, "names", "", "query file: one \"name TYPE\" per line")
	flag.IntVar(&o.conns, "c", 16, "connections (clients)")
	flag.IntVar(&o.outstanding, "q", 1000, "queries outstanding, over all connections")
	flag.DurationVar(&o.duration, "d", 6*time.Second, "run time (0: until -n passes)")
	flag.IntVar(&o.runs, "n", 0, "passes through the file (0: until -d)")
	flag.DurationVar(&o.timeout, "t", 5*time.Second, "a query unanswered after this is lost")
	flag.IntVar(&o.pid, "pid", 0, "server process to read CPU time of (0: none)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dnsload:", err)
		os.Exit(1)
	}
}

// work hands out queries: the next packed query, or false when the run is over.
type work struct {
	queries [][]byte // packed, ID 0
	next    atomic.Int64
	limit   int64 // 0: none
	stop    time.Time
}

func (w *work) take() ([]byte, bool) {
	i := w.next.Add(1) - 1
	if (w.limit > 0 && i >= w.limit) || (!w.stop.IsZero() && time.Now().After(w.stop)) {
		return nil, false
	}
	return w.queries[i%int64(len(w.queries))], true
}

// tally is one connection's (or one DoQ slot's) results, merged at the end.
type tally struct {
	lat    []time.Duration
	rcodes [16]int
	lost   int
	errs   []error
	last   time.Time // when the last answer arrived
}

func (t *tally) ok(d time.Duration, rcode int, now time.Time) {
	t.lat = append(t.lat, d)
	t.rcodes[rcode&0x0f]++
	t.last = now
}

func run(o options) error {
	if o.names == "" || o.conns < 1 || o.outstanding < o.conns {
		return fmt.Errorf("need -names, -c ≥ 1 and -q ≥ -c")
	}
	if o.duration <= 0 && o.runs <= 0 {
		return fmt.Errorf("need -d or -n")
	}
	qs, err := readQueries(o.names)
	if err != nil {
		return err
	}
	w := &work{queries: qs, limit: int64(o.runs * len(qs))}
	ctx := context.Background()
	tc := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	var runners []func(*tally)
	for i := range o.conns {
		window := o.outstanding / o.conns
		if i < o.outstanding%o.conns {
			window++
		}
		switch o.proto {
		case "udp", "tcp", "dot":
			var c *tls.Config
			if o.proto == "dot" {
				c = tc.Clone()
				c.NextProtos = []string{"dot"}
			}
			network := "tcp"
			if o.proto == "udp" {
				network = "udp"
			}
			p, err := dialPipe(ctx, network, o.addr, c)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			defer p.close()
			runners = append(runners, func(t *tally) { p.run(w, window, t, o.timeout) })
		case "doq":
			c := tc.Clone()
			c.NextProtos = []string{"doq"}
			c.MinVersion = tls.VersionTLS13
			d, err := dialDoQ(ctx, o.addr, c)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			defer d.close()
			for range window {
				runners = append(runners, func(t *tally) { d.run(w, t, o.timeout) })
			}
		default:
			return fmt.Errorf("unknown -proto %q", o.proto)
		}
	}
	cpu0 := cpuTime(o.pid)
	start := time.Now()
	if o.duration > 0 {
		w.stop = start.Add(o.duration)
	}
	tallies := make([]*tally, len(runners))
	var wg sync.WaitGroup
	for i, r := range runners {
		t := &tally{}
		tallies[i] = t
		wg.Go(func() { r(t) })
	}
	wg.Wait()
	cpu := cpuTime(o.pid) - cpu0
	return summarize(o, tallies, start, cpu)
}

func readQueries(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		qtype := dns.TypeA
		if len(fields) > 1 {
			t, ok := dns.StringToType[strings.ToUpper(fields[1])]
			if !ok {
				return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
			}
			qtype = t
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(fields[0]), qtype)
		m.Id = 0
		b, err := m.Pack()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return out, sc.Err()
}
