package h2

import (
	"context"
	"regexp"
	"strconv"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

var h2loadRPS = regexp.MustCompile(`finished in [^,]+, ([\d.]+) req/s`)

// BenchmarkWorkerWrite compares the two ways a worker's answer (a query the
// fast path declined) can reach the wire: the worker encodes and writes it
// itself under the connection's locks ("mutex", what the server does), or
// hands it to a writer goroutine per connection ("channel"). Every query
// misses the fast path here. Runs once whatever b.N:
//
//	go test -run '^$' -bench WorkerWrite -benchtime 1x ./doh/h2
func BenchmarkWorkerWrite(b *testing.B) {
	testenv.Tool(b, "h2load")
	for _, mode := range []string{"mutex", "channel", "mutex", "channel"} {
		h := newCache()
		slow := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) { return h.ServeDNS(ctx, q) })
		e := start(b, Config{Handler: slow})
		e.s.writerGoroutine = mode == "channel"
		u := getURL("https://127.0.0.1:"+strconv.Itoa(e.port)+"/dns-query", query("h1.bench.test.", dns.TypeA))
		out := tlsconftest.Run(b, "h2load", "-D", "4", "-c", "4", "-m", "32", u)
		m := h2loadRPS.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("h2load:\n%s", out)
		}
		rps, _ := strconv.ParseFloat(m[1], 64)
		b.Logf("%-7s h2load -D 4 -c 4 -m 32: %.0f req/s", mode, rps)
		b.ReportMetric(rps, mode+"-rps")
	}
}
