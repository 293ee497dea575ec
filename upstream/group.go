package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Strategy is how a [Group] picks among its upstreams.
type Strategy int

const (
	// Failover asks the upstreams in order, the next only when the previous
	// failed or answered SERVFAIL/REFUSED.
	Failover Strategy = iota
	// RoundRobin is Failover starting at the next upstream on each query.
	RoundRobin
	// Race starts the upstreams in order, the next one whenever the
	// previous has not answered well within Stagger, takes the first good
	// answer and cancels the rest.
	Race
	// Fastest is Failover ordered by latency (EWMA), with a few queries sent
	// to another upstream first so every latency stays current.
	Fastest
)

var strategyNames = []string{"failover", "round_robin", "race", "fastest"}

func (s Strategy) String() string {
	if s < 0 || int(s) >= len(strategyNames) {
		return fmt.Sprintf("Strategy(%d)", int(s))
	}
	return strategyNames[s]
}

// ParseStrategy maps a configuration name (failover, round_robin, race,
// fastest; "" is failover) to a Strategy.
func ParseStrategy(name string) (Strategy, error) {
	if name == "" {
		return Failover, nil
	}
	if i := slices.Index(strategyNames, name); i >= 0 {
		return Strategy(i), nil
	}
	return 0, fmt.Errorf("unknown strategy %q (want %s)", name, strings.Join(strategyNames, ", "))
}

// GroupConfig configures a [Group]. Zero values take the documented defaults.
type GroupConfig struct {
	// Name is the group's String, for logs; "" means "strategy(url, …)".
	Name string
	// Upstreams, at least one. The group owns them: Close closes them.
	Upstreams []Upstream
	Strategy  Strategy
	// Stagger is how long Race waits for an answer before starting the
	// next upstream. 0 means 100 ms.
	Stagger time.Duration
	// MaxFails consecutive failures (errors, timeouts; not RCODEs) mark an
	// upstream down. 0 means 3.
	MaxFails int
	// ProbeName is the name whose NS record probes a down upstream; ""
	// means the root. ProbeInterval is the first probe's delay, doubling up
	// to ProbeMaxInterval; ProbeTimeout bounds one probe. 0 means 1 s, 30 s
	// and 2 s.
	ProbeName                       string
	ProbeInterval, ProbeMaxInterval time.Duration
	ProbeTimeout                    time.Duration
	// Explore is the share of Fastest's queries sent first to an upstream
	// other than the fastest. 0 means 0.05.
	Explore float64
	Logger  *slog.Logger
	// Metrics receives lamina_upstream_up for each upstream; nil is none.
	Metrics *Metrics
}

// Group spreads queries over several upstreams and tracks their health. It
// is itself an [Upstream], safe for concurrent use.
//
// An upstream that fails MaxFails times in a row is skipped and probed in the
// background until it answers again. When every upstream is down, Exchange
// returns [ErrAllDown] at once instead of waiting for timeouts in series.
type Group struct {
	name         string
	members      []*member
	strategy     Strategy
	stagger      time.Duration
	maxFails     int
	probeMsg     *dns.Msg
	probeMin     time.Duration
	probeMax     time.Duration
	probeTimeout time.Duration
	explore      float64
	log          *slog.Logger
	next         atomic.Uint32 // round robin position

	ctx    context.Context // cancelled by Close; ends probes
	cancel context.CancelFunc
	wg     sync.WaitGroup // probes and race legs

	mu     sync.Mutex
	closed bool
}

var _ Upstream = (*Group)(nil)

// NewGroup validates cfg and returns the group, all upstreams up.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("upstream group: no upstreams")
	}
	if cfg.Strategy < Failover || cfg.Strategy > Fastest {
		return nil, fmt.Errorf("upstream group: invalid strategy %d", int(cfg.Strategy))
	}
	if cfg.Explore < 0 || cfg.Explore >= 1 {
		return nil, fmt.Errorf("upstream group: explore %v not in [0, 1)", cfg.Explore)
	}
	if cfg.Name == "" {
		names := make([]string, len(cfg.Upstreams))
		for i, u := range cfg.Upstreams {
			names[i] = u.String()
		}
		cfg.Name = cfg.Strategy.String() + "(" + strings.Join(names, ", ") + ")"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Group{
		name:         cfg.Name,
		strategy:     cfg.Strategy,
		stagger:      orDefault(cfg.Stagger, 100*time.Millisecond),
		maxFails:     cfg.MaxFails,
		probeMsg:     newProbe(cfg.ProbeName),
		probeMin:     orDefault(cfg.ProbeInterval, time.Second),
		probeMax:     orDefault(cfg.ProbeMaxInterval, 30*time.Second),
		probeTimeout: orDefault(cfg.ProbeTimeout, 2*time.Second),
		explore:      cfg.Explore,
		log:          cfg.Logger.With("group", cfg.Name),
		ctx:          ctx,
		cancel:       cancel,
	}
	if g.maxFails <= 0 {
		g.maxFails = 3
	}
	if g.explore == 0 {
		g.explore = 0.05
	}
	g.probeMax = max(g.probeMax, g.probeMin)
	for _, u := range cfg.Upstreams {
		mb := &member{u: u, m: cfg.Metrics.forUpstream(u.String())}
		mb.m.setUp(true)
		g.members = append(g.members, mb)
	}
	return g, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// String returns the group's name.
func (g *Group) String() string { return g.name }

// Close stops the probes and closes every upstream of the group.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
	var errs []error
	for _, mb := range g.members {
		errs = append(errs, mb.u.Close())
	}
	return errors.Join(errs...)
}

// Exchange sends req to the group's upstreams per its strategy. It returns
// the first good answer (not SERVFAIL or REFUSED); failing that, the last
// answer any upstream gave; failing that, an error (wrapping [ErrAllDown]
// when no upstream was up).
func (g *Group) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if g.ctx.Err() != nil {
		return nil, closedError(g)
	}
	order := g.order()
	if len(order) == 0 {
		return nil, fmt.Errorf("exchanging with %s: %w", g, ErrAllDown)
	}
	if g.strategy == Race {
		return g.race(ctx, order, req)
	}
	return g.inTurn(ctx, order, req)
}

// order lists the members that are up, in the order to try them.
func (g *Group) order() []*member {
	up := make([]*member, 0, len(g.members))
	for _, mb := range g.members {
		if !mb.down.Load() {
			up = append(up, mb)
		}
	}
	if len(up) < 2 {
		return up
	}
	switch g.strategy {
	case RoundRobin:
		k := int(g.next.Add(1)-1) % len(up)
		up = append(up[k:], up[:k]...)
	case Fastest:
		slices.SortStableFunc(up, func(a, b *member) int {
			la, lb := a.latency(), b.latency()
			switch {
			case la < lb:
				return -1
			case la > lb:
				return 1
			}
			return 0
		})
		if rand.Float64() < g.explore {
			k := 1 + rand.IntN(len(up)-1)
			up[0], up[k] = up[k], up[0]
		}
	}
	return up
}

// good reports whether an answer ends the search: SERVFAIL and REFUSED say
// this server cannot help, but another may.
func good(resp *dns.Msg) bool {
	return resp.Rcode != dns.RcodeServerFailure && resp.Rcode != dns.RcodeRefused
}

// inTurn asks each member in order until one answers well.
func (g *Group) inTurn(ctx context.Context, order []*member, req *dns.Msg) (*dns.Msg, error) {
	var fallback *dns.Msg
	var lastErr error
	for _, mb := range order {
		resp, err := g.exchange(ctx, mb, req)
		if err == nil {
			if good(resp) {
				return resp, nil
			}
			fallback = resp
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return g.fallback(ctx, fallback, lastErr)
}

func (g *Group) fallback(ctx context.Context, resp *dns.Msg, err error) (*dns.Msg, error) {
	if resp != nil {
		return resp, nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = ctxError(ctx)
	}
	return nil, fmt.Errorf("exchanging with %s: %w", g, err)
}
