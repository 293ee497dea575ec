package resolver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/workpool"
)

// Resolver is Lamina's policy: it answers queries from local data, the cache
// or an upstream chosen by zone. It implements [Handler] and [WireHandler],
// is safe for concurrent use and immutable after [New]; reconfiguring means
// building a new Resolver (and closing the old one once it is idle).
type Resolver struct {
	routes      *router
	local       *localData
	acls        map[string]ACL
	defACL      ACL
	limiter     *limiter
	limitDrop   bool
	refuseAny   bool
	cache       Cache
	self        func() []dns.RR
	selfNames   map[string]struct{} // owners of self records, lower-case wire form
	sendECS     bool
	timeout     time.Duration
	staleAfter  time.Duration
	log         *slog.Logger
	qlog        *slog.Logger
	logClientIP bool
	metrics     *metrics

	flights flights
	base    context.Context // parent of every upstream exchange; canceled by Close
	cancel  context.CancelFunc
	bgSem   chan struct{}
	mu      sync.Mutex
	closed  bool
	bg      sync.WaitGroup
}

var (
	_ Handler     = (*Resolver)(nil)
	_ WireHandler = (*Resolver)(nil)
)

// New validates cfg and builds a Resolver. It fails on an invalid zone or
// route, a record outside its zone, a bad ACL or rate limit, or metrics that
// are already registered.
func New(cfg Config) (*Resolver, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("resolver: registering metrics: %w", err)
	}
	routes, err := newRouter(cfg.Routes, m)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	local, err := newLocalData(cfg.LocalZones)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	acls := make(map[string]ACL, len(cfg.ACLs))
	for k, v := range cfg.ACLs {
		acls[k] = append(ACL(nil), v...)
	}
	bgMax := cfg.MaxBackground
	if bgMax == 0 {
		bgMax = 64
	}
	r := &Resolver{
		routes:      routes,
		local:       local,
		acls:        acls,
		defACL:      DefaultACL(),
		limitDrop:   cfg.RateLimit.Action == RateLimitDrop,
		refuseAny:   cfg.RefuseAny,
		cache:       cfg.Cache,
		self:        cfg.SelfRecords,
		sendECS:     cfg.SendECS,
		timeout:     cfg.timeout(),
		staleAfter:  cfg.staleAfter(),
		log:         log.With("component", "resolver"),
		qlog:        cfg.QueryLog,
		logClientIP: cfg.LogClientIP,
		metrics:     m,
		bgSem:       make(chan struct{}, bgMax),
	}
	if r.self != nil {
		if r.selfNames, err = wireNames(r.self()); err != nil {
			return nil, fmt.Errorf("resolver: self records: %w", err)
		}
	}
	r.base, r.cancel = context.WithCancel(context.Background())
	r.flights.pool = workpool.New(0)
	for zone := range routes.byZone {
		if z := local.find(zone); z != nil && !z.routable {
			r.log.Warn("route ignored: the zone is answered locally", "route", zone, "local_zone", z.name)
		}
	}
	if cfg.RateLimit.QPS > 0 {
		r.limiter = newLimiter(cfg.RateLimit, coarseClock(r.base, &r.bg, 5*time.Millisecond))
	}
	return r, nil
}

// Close cancels upstream exchanges still running and waits for background
// refreshes to end. Queries served after Close fail with SERVFAIL. It does
// not close the upstreams, which the caller owns.
func (r *Resolver) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.bg.Wait()
	r.flights.pool.Close()
	return nil
}

// ServeDNS applies the policy to q in order: ACL, rate limit, sanity checks,
// Lamina's own records, local and special-use zones, RFC 8482 ANY, the cache,
// then the upstream of the longest matching route. It returns an error only
// for ErrDrop; every other outcome, failures included, is a response.
func (r *Resolver) ServeDNS(ctx context.Context, q *Query) (*dns.Msg, error) {
	var start time.Time
	if r.qlog != nil {
		start = time.Now()
	}
	m, src, err := r.serve(ctx, q)
	if err != nil {
		return nil, err
	}
	r.metrics.response(src, m.Rcode)
	if r.qlog != nil && len(q.Msg.Question) > 0 {
		qq := q.Msg.Question[0]
		r.logQuery(q, qq.Name, qq.Qtype, m.Rcode, src, start)
	}
	return m, nil
}

func (r *Resolver) serve(ctx context.Context, q *Query) (*dns.Msg, source, error) {
	req := q.Msg
	client := q.Client.Addr()
	if !aclFor(r.acls, r.defACL, q.Listener).Allowed(client) {
		r.metrics.refused(true)
		if req == nil {
			return nil, srcPolicy, ErrDrop
		}
		return refuse(req, "client not allowed"), srcPolicy, nil
	}
	if !r.limiter.allow(client) {
		r.metrics.limited()
		if r.limitDrop || req == nil {
			return nil, srcPolicy, ErrDrop
		}
		r.metrics.refused(false)
		return refuse(req, "rate limited"), srcPolicy, nil
	}
	if m, drop := sanity(req); drop {
		return nil, srcPolicy, ErrDrop
	} else if m != nil {
		return m, srcPolicy, nil
	}
	qq := req.Question[0]
	if qq.Qclass != dns.ClassINET {
		// CHAOS: no version.bind and friends.
		m := ErrorResponse(req, &Error{Rcode: dns.RcodeRefused, Code: dns.ExtendedErrorCodeNotSupported})
		return m, srcPolicy, nil
	}
	if r.self != nil {
		if m := selfAnswer(req, r.self(), qq); m != nil {
			return m, srcLocal, nil
		}
	}
	lname := strings.ToLower(qq.Name)
	if z := r.local.served(lname, r.routes); z != nil {
		m, outside := r.local.answer(req, z, qq, r.routes)
		if outside != "" {
			r.chase(ctx, q, m, outside)
		}
		return m, srcLocal, nil
	}
	if qq.Qtype == dns.TypeANY && r.refuseAny {
		return minimalANY(req), srcPolicy, nil
	}
	m, src := r.forward(ctx, req, client)
	return m, src, nil
}

// chase resolves the target of a local CNAME that leads out of local data
// and appends the result to m, as a recursive resolver would.
func (r *Resolver) chase(ctx context.Context, q *Query, m *dns.Msg, target string) {
	sub := q.Msg.Copy()
	sub.Question[0].Name = target
	resp, _ := r.forward(ctx, sub, q.Client.Addr())
	m.Answer = append(m.Answer, resp.Answer...)
	m.Rcode = resp.Rcode
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
		m.Ns = resp.Ns
	}
}

// reply starts a response to req: RA set, the client's question as sent, and
// EDNS when the client used it.
func reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(DefaultUDPSize, opt.Do())
	}
	return m
}

func refuse(req *dns.Msg, text string) *dns.Msg {
	return ErrorResponse(req, &Error{Rcode: dns.RcodeRefused, Code: dns.ExtendedErrorCodeProhibited, Text: text})
}

// sanity answers what the policy does not serve: more or fewer than one
// question, opcodes other than QUERY, EDNS versions other than 0 (RFC 6891
// §6.1.3), meta and zone-transfer types. drop means no answer at all.
func sanity(req *dns.Msg) (m *dns.Msg, drop bool) {
	if req == nil || req.Response {
		return nil, true
	}
	rcode := -1
	switch {
	case len(req.Question) != 1:
		rcode = dns.RcodeFormatError
	case req.Opcode != dns.OpcodeQuery:
		rcode = dns.RcodeNotImplemented
	case req.IsEdns0() != nil && req.IsEdns0().Version() != 0:
		rcode = dns.RcodeBadVers
	}
	if rcode < 0 {
		switch req.Question[0].Qtype {
		case dns.TypeOPT:
			rcode = dns.RcodeFormatError
		case dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB:
			rcode = dns.RcodeNotImplemented
		default:
			if c := req.Question[0].Qclass; c != dns.ClassINET && c != dns.ClassCHAOS {
				rcode = dns.RcodeNotImplemented
			}
		}
	}
	if rcode < 0 {
		return nil, false
	}
	m = new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	if rcode == dns.RcodeBadVers || (req.IsEdns0() != nil && len(req.Question) == 1) {
		m.SetEdns0(DefaultUDPSize, false)
	}
	return m, false
}

// minimalANY is the RFC 8482 §4.2 answer: one synthesized HINFO.
func minimalANY(req *dns.Msg) *dns.Msg {
	m := reply(req)
	m.Answer = []dns.RR{&dns.HINFO{
		Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: 3600},
		Cpu: "RFC8482",
	}}
	return m
}
