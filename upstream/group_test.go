package upstream

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fake is an Upstream whose behaviour is a function.
type fake struct {
	name   string
	fn     func(ctx context.Context, req *dns.Msg) (*dns.Msg, error)
	calls  atomic.Int32
	closed atomic.Bool
}

func (f *fake) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	f.calls.Add(1)
	return f.fn(ctx, req)
}
func (f *fake) String() string { return f.name }
func (f *fake) Close() error   { f.closed.Store(true); return nil }

func answering(ip string) func(context.Context, *dns.Msg) (*dns.Msg, error) {
	return func(_ context.Context, req *dns.Msg) (*dns.Msg, error) { return answer(req, ip), nil }
}

func rcode(rc int) func(context.Context, *dns.Msg) (*dns.Msg, error) {
	return func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetRcode(req, rc)
		return m, nil
	}
}

var errBroken = errors.New("broken")

func failing(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, errBroken }

// blocking waits for ctx and reports through cancelled that it saw it end.
func blocking(cancelled chan<- struct{}) func(context.Context, *dns.Msg) (*dns.Msg, error) {
	return func(ctx context.Context, _ *dns.Msg) (*dns.Msg, error) {
		<-ctx.Done()
		select {
		case cancelled <- struct{}{}:
		default:
		}
		return nil, ctx.Err()
	}
}

func newGroup(t *testing.T, cfg GroupConfig) *Group {
	t.Helper()
	g, err := NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func mustExchange(t *testing.T, u Upstream) *dns.Msg {
	t.Helper()
	resp, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestGroupStrategies: which upstream answers, per strategy.
func TestGroupStrategies(t *testing.T) {
	tests := []struct {
		name     string
		strategy Strategy
		fns      []func(context.Context, *dns.Msg) (*dns.Msg, error)
		want     []string // answers of successive queries
	}{
		{"failover first", Failover, fnList(answering("192.0.2.1"), answering("192.0.2.2")), []string{"192.0.2.1", "192.0.2.1"}},
		{"failover on error", Failover, fnList(failing, answering("192.0.2.2")), []string{"192.0.2.2"}},
		{"failover on servfail", Failover, fnList(rcode(dns.RcodeServerFailure), answering("192.0.2.2")), []string{"192.0.2.2"}},
		{"failover on refused", Failover, fnList(rcode(dns.RcodeRefused), answering("192.0.2.2")), []string{"192.0.2.2"}},
		{"nxdomain is good", Failover, fnList(rcode(dns.RcodeNameError), answering("192.0.2.2")), []string{""}},
		{"round robin", RoundRobin, fnList(answering("192.0.2.1"), answering("192.0.2.2")), []string{"192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.2"}},
		{"race first", Race, fnList(answering("192.0.2.1"), answering("192.0.2.2")), []string{"192.0.2.1"}},
		{"race skips error", Race, fnList(failing, answering("192.0.2.2")), []string{"192.0.2.2"}},
		{"race skips servfail", Race, fnList(rcode(dns.RcodeServerFailure), answering("192.0.2.2")), []string{"192.0.2.2"}},
		{"fastest unmeasured first", Fastest, fnList(answering("192.0.2.1"), answering("192.0.2.2")), []string{"192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []Upstream
			for i, fn := range tt.fns {
				ups = append(ups, &fake{name: string(rune('a' + i)), fn: fn})
			}
			g := newGroup(t, GroupConfig{Upstreams: ups, Strategy: tt.strategy, Explore: 1e-9})
			for i, want := range tt.want {
				if got := answerIP(mustExchange(t, g)); got != want {
					t.Errorf("query %d answered %q, want %q", i, got, want)
				}
			}
		})
	}
}

func fnList(fns ...func(context.Context, *dns.Msg) (*dns.Msg, error)) []func(context.Context, *dns.Msg) (*dns.Msg, error) {
	return fns
}

// TestGroupAllBad: when nobody answers well, the last answer is returned;
// when nobody answers, the error.
func TestGroupAllBad(t *testing.T) {
	for _, s := range []Strategy{Failover, RoundRobin, Race, Fastest} {
		t.Run(s.String(), func(t *testing.T) {
			g := newGroup(t, GroupConfig{Strategy: s, Upstreams: []Upstream{
				&fake{name: "a", fn: rcode(dns.RcodeServerFailure)},
				&fake{name: "b", fn: rcode(dns.RcodeServerFailure)},
			}})
			if resp := mustExchange(t, g); resp.Rcode != dns.RcodeServerFailure {
				t.Fatalf("rcode %d, want SERVFAIL passed on", resp.Rcode)
			}
			g2 := newGroup(t, GroupConfig{Strategy: s, Upstreams: []Upstream{&fake{name: "a", fn: failing}}})
			if _, err := g2.Exchange(context.Background(), query("x.", dns.TypeA)); !errors.Is(err, errBroken) {
				t.Fatalf("err = %v, want the upstream's", err)
			}
		})
	}
}

// TestGroupRaceStagger: the first upstream hangs; the second starts after
// the stagger and wins; the first is cancelled.
func TestGroupRaceStagger(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	slow := &fake{name: "slow", fn: blocking(cancelled)}
	fast := &fake{name: "fast", fn: answering("192.0.2.2")}
	unused := &fake{name: "unused", fn: answering("192.0.2.3")}
	g := newGroup(t, GroupConfig{Strategy: Race, Stagger: 20 * time.Millisecond, Upstreams: []Upstream{slow, fast, unused}})
	if got := answerIP(mustExchange(t, g)); got != "192.0.2.2" {
		t.Fatalf("answer %q, want the second upstream's", got)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the losing upstream was not cancelled")
	}
	if n := unused.calls.Load(); n != 0 {
		t.Errorf("third upstream called %d times, want 0", n)
	}
	// A cancelled loser is not the loser's fault.
	if slow.calls.Load() != 1 || g.members[0].fails.Load() != 0 {
		t.Errorf("loser has %d failures, want 0", g.members[0].fails.Load())
	}
}

// TestGroupDownAndProbedBack: an upstream failing MaxFails times is marked
// down, skipped, probed, and used again once it answers.
func TestGroupDownAndProbedBack(t *testing.T) {
	var healthy atomic.Bool
	flaky := &fake{name: "flaky", fn: func(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
		if healthy.Load() {
			return answer(req, "192.0.2.1"), nil
		}
		return nil, errBroken
	}}
	backup := &fake{name: "backup", fn: answering("192.0.2.2")}
	reg := prometheus.NewRegistry()
	g := newGroup(t, GroupConfig{
		Upstreams: []Upstream{flaky, backup}, MaxFails: 2,
		ProbeInterval: 5 * time.Millisecond, ProbeMaxInterval: 20 * time.Millisecond,
		Metrics: NewMetrics(reg),
	})
	up := func() float64 {
		return counterValue(t, reg, "lamina_upstream_up", map[string]string{"upstream": "flaky"})
	}
	if up() != 1 {
		t.Fatal("upstream not up at start")
	}
	for range 2 {
		if got := answerIP(mustExchange(t, g)); got != "192.0.2.2" {
			t.Fatalf("answer %q, want backup's", got)
		}
	}
	if !g.members[0].down.Load() || up() != 0 {
		t.Fatal("flaky not marked down after MaxFails failures")
	}
	if st := g.Status(); len(st) != 2 || st[0].URL != "flaky" || st[0].Up || !st[1].Up || st[1].Latency <= 0 {
		t.Fatalf("Status() = %+v", st)
	}
	before := flaky.calls.Load()
	mustExchange(t, g)
	// Only probes may have reached it; they send NS queries for the root.
	healthy.Store(true)
	for i := 0; g.members[0].down.Load(); i++ {
		if i > 1000 {
			t.Fatal("flaky never probed back up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if flaky.calls.Load() <= before {
		t.Fatal("no probe reached flaky")
	}
	if got := answerIP(mustExchange(t, g)); got != "192.0.2.1" || up() != 1 {
		t.Fatalf("answer %q (up=%v), want flaky's again", got, up())
	}
}

// TestGroupAllDownFast: with every upstream down, Exchange fails at once
// with ErrAllDown and does not touch them.
func TestGroupAllDownFast(t *testing.T) {
	hang := make(chan struct{}, 1)
	a := &fake{name: "a", fn: failing}
	b := &fake{name: "b", fn: failing}
	g := newGroup(t, GroupConfig{Upstreams: []Upstream{a, b}, MaxFails: 1, ProbeInterval: time.Hour})
	if _, err := g.Exchange(context.Background(), query("x.", dns.TypeA)); !errors.Is(err, errBroken) {
		t.Fatal(err)
	}
	a.fn, b.fn = blocking(hang), blocking(hang) // not called any more: no race
	_, err := g.Exchange(context.Background(), query("x.", dns.TypeA))
	if !errors.Is(err, ErrAllDown) {
		t.Fatalf("err = %v, want ErrAllDown", err)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("calls %d, %d; want 1, 1", a.calls.Load(), b.calls.Load())
	}
}

// TestGroupFastest: the upstream answering at once gets most queries; the
// slow one still gets some (exploration).
func TestGroupFastest(t *testing.T) {
	slow := &fake{name: "slow", fn: func(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
		time.Sleep(10 * time.Millisecond)
		return answer(req, "192.0.2.1"), nil
	}}
	quick := &fake{name: "quick", fn: answering("192.0.2.2")}
	g := newGroup(t, GroupConfig{Strategy: Fastest, Explore: 0.2, Upstreams: []Upstream{slow, quick}})
	const n = 200
	for range n {
		mustExchange(t, g)
	}
	s, q := slow.calls.Load(), quick.calls.Load()
	if q < n/2 || s < 2 {
		t.Fatalf("slow got %d, quick %d of %d queries", s, q, n)
	}
}

// TestGroupClose: Close closes the upstreams; Exchange then fails with
// net.ErrClosed; probes stop (goleak checks).
func TestGroupClose(t *testing.T) {
	a := &fake{name: "a", fn: failing}
	g, err := NewGroup(GroupConfig{Upstreams: []Upstream{a}, MaxFails: 1, ProbeInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g.Exchange(context.Background(), query("x.", dns.TypeA))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if !a.closed.Load() {
		t.Error("upstream not closed")
	}
	if _, err := g.Exchange(context.Background(), query("x.", dns.TypeA)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("err = %v, want net.ErrClosed", err)
	}
}

// TestGroupFailoverRealServers: two UDP servers; the first dies mid-run;
// every query still succeeds, and the dead one is marked down.
func TestGroupFailoverRealServers(t *testing.T) {
	for _, s := range []Strategy{Failover, Race, RoundRobin, Fastest} {
		t.Run(s.String(), func(t *testing.T) {
			s1, s2 := startServer(t), startServer(t)
			g := newGroup(t, GroupConfig{Strategy: s, ProbeInterval: time.Hour, Upstreams: []Upstream{
				NewUDP(s1.addr, Options{Timeout: 500 * time.Millisecond}),
				NewTCP(s2.addr, Options{Timeout: 500 * time.Millisecond}),
			}})
			var wg sync.WaitGroup
			for i := range 200 {
				if i == 50 {
					s1.Close()
				}
				wg.Go(func() {
					if _, err := g.Exchange(context.Background(), query("www.example.", dns.TypeA)); err != nil {
						t.Errorf("query %d: %v", i, err)
					}
				})
				if i%10 == 0 {
					wg.Wait()
				}
			}
			wg.Wait()
			if !g.members[0].down.Load() {
				t.Error("dead server not marked down")
			}
		})
	}
}
