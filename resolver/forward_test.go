package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/upstream"
)

func TestUpstreamQueryIsBuiltFresh(t *testing.T) {
	var got *dns.Msg
	up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		got = req.Copy()
		return answerA(req, "192.0.2.1"), nil
	}}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
	q := from(query("Example.COM.", dns.TypeA), "10.1.2.3")
	q.Msg.RecursionDesired = false
	q.Msg.CheckingDisabled = true
	opt := q.Msg.IsEdns0()
	opt.SetDo()
	opt.SetUDPSize(4096)
	opt.Option = append(opt.Option,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP("198.51.100.7").To4()},
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"},
		&dns.EDNS0_PADDING{Padding: make([]byte, 40)},
	)
	m := serve(t, r, q)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("response %v", m)
	}
	uopt := got.IsEdns0()
	switch {
	case got.Question[0] != q.Msg.Question[0]:
		t.Errorf("upstream question %v", got.Question)
	case !got.RecursionDesired || !got.CheckingDisabled:
		t.Errorf("upstream RD %v CD %v, want both set", got.RecursionDesired, got.CheckingDisabled)
	case uopt == nil || uopt.UDPSize() != DefaultUDPSize || !uopt.Do():
		t.Errorf("upstream EDNS %v, want size %d with DO", uopt, DefaultUDPSize)
	case len(uopt.Option) != 0:
		t.Errorf("client options forwarded: %v", uopt.Option)
	case len(got.Extra) != 1 || len(got.Answer)+len(got.Ns) != 0:
		t.Errorf("upstream query sections %v %v %v", got.Answer, got.Ns, got.Extra)
	}
	if ropt := m.IsEdns0(); ropt == nil || !ropt.Do() || len(ropt.Option) != 0 {
		t.Errorf("response EDNS %v", ropt)
	}
	if m.RecursionDesired || !m.CheckingDisabled {
		t.Errorf("response RD/CD not the client's")
	}

	// A client without EDNS gets none back.
	q = query("example.com.", dns.TypeA)
	q.Msg.Extra = nil
	if m := serve(t, r, q); m.IsEdns0() != nil {
		t.Errorf("OPT added for a client without EDNS")
	}
}

func TestSendECS(t *testing.T) {
	var got []*dns.EDNS0_SUBNET
	var mu sync.Mutex
	up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		mu.Lock()
		defer mu.Unlock()
		var ecs *dns.EDNS0_SUBNET
		for _, o := range req.IsEdns0().Option {
			ecs = o.(*dns.EDNS0_SUBNET)
		}
		got = append(got, ecs)
		return answerA(req, "192.0.2.1"), nil
	}}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, SendECS: true,
		ACLs: map[string]ACL{"*": {{Prefix: netipPrefix("0.0.0.0/0"), Allow: true}, {Prefix: netipPrefix("::/0"), Allow: true}}}})
	withECS := func(q *Query, addr string, bits uint8) *Query {
		ip := net.ParseIP(addr)
		fam := uint16(2)
		if ip4 := ip.To4(); ip4 != nil {
			ip, fam = ip4, 1
		}
		o := q.Msg.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: bits, Address: ip})
		return q
	}
	tests := []struct {
		q    *Query
		want string // "" = no ECS
	}{
		{from(query("a.example.", dns.TypeA), "203.0.113.77"), "203.0.113.0/24"},
		{from(query("b.example.", dns.TypeA), "2001:db8:1:2:3::1"), "2001:db8:1::/56"},
		{from(query("c.example.", dns.TypeA), "192.168.1.1"), ""},
		{withECS(from(query("d.example.", dns.TypeA), "192.168.1.1"), "198.51.100.99", 32), "198.51.100.0/24"},
		{withECS(from(query("e.example.", dns.TypeA), "192.168.1.1"), "198.51.100.99", 16), "198.51.0.0/16"},
		{withECS(from(query("f.example.", dns.TypeA), "203.0.113.77"), "0.0.0.0", 0), ""},
	}
	for i, tt := range tests {
		serve(t, r, tt.q)
		var s string
		if e := got[i]; e != nil {
			s = fmt.Sprintf("%s/%d", e.Address, e.SourceNetmask)
		}
		if s != tt.want {
			t.Errorf("%s: ECS %q, want %q", tt.q.Msg.Question[0].Name, s, tt.want)
		}
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		err  error
		code uint16
	}{
		{context.DeadlineExceeded, dns.ExtendedErrorCodeNoReachableAuthority},
		{fmt.Errorf("exchanging: %w", upstream.ErrTimeout), dns.ExtendedErrorCodeNoReachableAuthority},
		{upstream.ErrAllDown, dns.ExtendedErrorCodeNoReachableAuthority},
		{errors.New("connection refused"), dns.ExtendedErrorCodeNetworkError},
		{&Error{Code: dns.ExtendedErrorCodeDNSBogus, Text: "bogus"}, dns.ExtendedErrorCodeDNSBogus},
	}
	for _, tt := range tests {
		up := &fakeUpstream{OnExchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, tt.err }}
		reg := prometheus.NewRegistry()
		r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, Cache: &fakeCache{}, Registerer: reg})
		m := serve(t, r, query("example.com.", dns.TypeA))
		if code, ok := ede(m); m.Rcode != dns.RcodeServerFailure || !ok || code != tt.code {
			t.Errorf("%v: rcode %s EDE %d, want SERVFAIL EDE %d", tt.err, dns.RcodeToString[m.Rcode], code, tt.code)
		}
		if n := counter(t, reg, "lamina_resolver_responses_total", map[string]string{"source": "upstream", "rcode": "SERVFAIL"}); n != 1 {
			t.Errorf("responses{upstream,SERVFAIL} = %v", n)
		}
	}
}

func TestTimeoutGivesSERVFAIL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := &fakeUpstream{OnExchange: func(ctx context.Context, _ *dns.Msg) (*dns.Msg, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, Timeout: 2 * time.Second})
		start := time.Now()
		m := serve(t, r, query("example.com.", dns.TypeA))
		if code, _ := ede(m); m.Rcode != dns.RcodeServerFailure || code != dns.ExtendedErrorCodeNoReachableAuthority {
			t.Errorf("rcode %s EDE %d", dns.RcodeToString[m.Rcode], code)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("gave up after %v, want the 2s timeout", d)
		}
	})
}

func TestServeStale(t *testing.T) {
	stale := answerA(query("example.com.", dns.TypeA).Msg, "192.0.2.99")
	var stales int
	c := &fakeCache{OnGet: func(req *dns.Msg, allowStale bool) (*dns.Msg, Freshness) {
		if !allowStale {
			return nil, Miss
		}
		stales++
		m := stale.Copy()
		m.Question = req.Question
		return m, Stale
	}}
	up := &fakeUpstream{OnExchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, upstream.ErrAllDown }}
	reg := prometheus.NewRegistry()
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, Cache: c, Registerer: reg})
	m := serve(t, r, query("example.com.", dns.TypeA))
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.99" || stales != 1 {
		t.Fatalf("stale answer not served: %v", m)
	}
	if n := counter(t, reg, "lamina_resolver_responses_total", map[string]string{"source": "stale", "rcode": "NOERROR"}); n != 1 {
		t.Errorf("responses{stale} = %v", n)
	}
}

// TestBackgroundRefresh covers prefetch (Refresh) and stale-while-revalidate
// (Stale without an upstream failure): both answer from the cache at once and
// refresh it in the background, once.
func TestBackgroundRefresh(t *testing.T) {
	for _, fr := range []Freshness{Refresh, Stale} {
		synctest.Test(t, func(t *testing.T) {
			cached := answerA(query("example.com.", dns.TypeA).Msg, "192.0.2.99")
			set := make(chan *dns.Msg, 1)
			c := &fakeCache{
				OnGet: func(req *dns.Msg, _ bool) (*dns.Msg, Freshness) { return cached.Copy(), fr },
				OnSet: func(_, resp *dns.Msg) { set <- resp },
			}
			release := make(chan struct{})
			up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
				<-release
				return answerA(req, "192.0.2.1"), nil
			}}
			reg := prometheus.NewRegistry()
			r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, Cache: c, Registerer: reg})
			for range 3 {
				m := serve(t, r, query("example.com.", dns.TypeA))
				if m.Answer[0].(*dns.A).A.String() != "192.0.2.99" {
					t.Fatalf("not answered from the cache: %v", m.Answer)
				}
			}
			synctest.Wait()
			close(release)
			if resp := <-set; resp.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
				t.Errorf("cache refreshed with %v", resp.Answer)
			}
			r.Close()
			if n := up.calls.Load(); n != 1 {
				t.Errorf("%d upstream exchanges for 3 concurrent refreshes, want 1", n)
			}
			if n := counter(t, reg, "lamina_prefetches_total", nil); n != 3 {
				t.Errorf("lamina_prefetches_total = %v, want 3", n)
			}
		})
	}
}

func TestCoalescing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
			<-release
			return answerA(req, "192.0.2.1"), nil
		}}
		sets := 0
		reg := prometheus.NewRegistry()
		r := mustNew(t, Config{
			Routes:     []Route{{Zone: ".", Upstream: up}},
			Cache:      &fakeCache{OnSet: func(_, _ *dns.Msg) { sets++ }},
			Registerer: reg,
		})
		const n = 10
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				// Every client spells the name differently (0x20).
				name := []byte("example.com.")
				for j := range name {
					if i>>(j%4)&1 == 1 {
						name[j] = strings.ToUpper(string(name[j]))[0]
					}
				}
				q := query(string(name), dns.TypeA)
				q.Msg.Id = uint16(i)
				m := serve(t, r, q)
				if m.Id != uint16(i) || len(m.Answer) != 1 || m.Answer[0].Header().Name != string(name) {
					t.Errorf("client %d got %v", i, m)
				}
			})
		}
		synctest.Wait() // all ten are waiting on one exchange
		close(release)
		wg.Wait()
		if c := up.calls.Load(); c != 1 {
			t.Errorf("%d upstream exchanges for %d identical queries, want 1", c, n)
		}
		if sets != 1 {
			t.Errorf("cache.Set called %d times, want 1", sets)
		}
		if c := counter(t, reg, "lamina_coalesced_total", nil); c != n-1 {
			t.Errorf("lamina_coalesced_total = %v, want %d", c, n-1)
		}
		if c := counter(t, reg, "lamina_route_queries_total", map[string]string{"route": "."}); c != n {
			t.Errorf("lamina_route_queries_total = %v, want %d", c, n)
		}
		// Different type, DO bit: separate exchanges.
		q := query("example.com.", dns.TypeAAAA)
		serve(t, r, q)
		q = query("example.com.", dns.TypeA)
		q.Msg.IsEdns0().SetDo()
		serve(t, r, q)
		if c := up.calls.Load(); c != 3 {
			t.Errorf("%d exchanges, want 3", c)
		}
	})
}

// A client that gives up does not cancel the exchange other clients wait on.
func TestCoalescedClientCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
			<-release
			return answerA(req, "192.0.2.1"), nil
		}}
		r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan *dns.Msg)
		go func() {
			m, _ := r.ServeDNS(ctx, query("example.com.", dns.TypeA))
			first <- m
		}()
		second := make(chan *dns.Msg)
		go func() {
			m, _ := r.ServeDNS(context.Background(), query("example.com.", dns.TypeA))
			second <- m
		}()
		synctest.Wait()
		cancel()
		if m := <-first; m.Rcode != dns.RcodeServerFailure {
			t.Errorf("canceled client: %s", dns.RcodeToString[m.Rcode])
		}
		close(release)
		if m := <-second; m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Errorf("waiting client: %v", m)
		}
	})
}

func TestUpstreamEDEPassedThrough(t *testing.T) {
	up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		m.SetEdns0(4096, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option,
			&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeDNSBogus},
			&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6869"})
		return m, nil
	}}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
	m := serve(t, r, query("example.com.", dns.TypeA))
	opt := m.IsEdns0()
	if code, _ := ede(m); m.Rcode != dns.RcodeServerFailure || code != dns.ExtendedErrorCodeDNSBogus || len(opt.Option) != 1 || opt.UDPSize() != DefaultUDPSize {
		t.Errorf("rcode %s options %v", dns.RcodeToString[m.Rcode], opt.Option)
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestUpstreamPanicIsContained(t *testing.T) {
	up := &fakeUpstream{OnExchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { panic("boom") }}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
	if m := serve(t, r, query("example.com.", dns.TypeA)); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

func TestExtendedRcodeWithoutClientEDNS(t *testing.T) {
	up := &fakeUpstream{OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeBadCookie)
		m.SetEdns0(1232, false)
		return m, nil
	}}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}})
	if m := serve(t, r, query("example.com.", dns.TypeA)); m.Rcode != dns.RcodeBadCookie {
		t.Errorf("EDNS client: rcode %s, want BADCOOKIE", dns.RcodeToString[m.Rcode])
	}
	q := query("example.com.", dns.TypeA)
	q.Msg.Extra = nil
	if m := serve(t, r, q); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("client without EDNS: rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// TestADOnlyWhenAsked: an answer the upstream marked AD reaches a client that
// set AD or DO with AD, and one that set neither without it, whether it comes
// from the upstream or the cache (RFC 6840 §5.8).
func TestADOnlyWhenAsked(t *testing.T) {
	up := &fakeUpstream{name: "ad", OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		m := answerA(req, "192.0.2.1")
		m.AuthenticatedData = true
		return m, nil
	}}
	r := mustNew(t, Config{Routes: []Route{{Zone: ".", Upstream: up}}, Cache: newMemCache()})
	for i, tt := range []struct {
		ad, do, want bool
	}{
		{true, false, true},   // upstream
		{false, false, false}, // cache
		{false, true, true},
		{true, false, true},
	} {
		q := query("example.com.", dns.TypeA)
		q.Msg.AuthenticatedData = tt.ad
		q.Msg.IsEdns0().SetDo(tt.do)
		if m := serve(t, r, q); m.AuthenticatedData != tt.want {
			t.Errorf("%d: AD=%v DO=%v: response AD %v, want %v", i, tt.ad, tt.do, m.AuthenticatedData, tt.want)
		}
	}
}
