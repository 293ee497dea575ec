package bench

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/miekg/dns"
)

// answerUpstream is an in-process upstream that answers every A query with
// one address, counting its exchanges so benchmarks can prove they measured
// cache hits only.
type answerUpstream struct{ exchanges atomic.Int64 }

func (u *answerUpstream) Exchange(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
	u.exchanges.Add(1)
	resp := new(dns.Msg)
	resp.SetReply(req)
	q := req.Question[0]
	resp.Answer = []dns.RR{&dns.A{
		Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600},
		A:   net.IPv4(10, 0, 0, 1).To4(),
	}}
	return resp, nil
}

func (u *answerUpstream) String() string { return "bench://answer" }
func (u *answerUpstream) Close() error   { return nil }

// benchName is the i-th name of the query files bench/run uses.
func benchName(i int) string { return fmt.Sprintf("h%d.bench.test.", i) }
