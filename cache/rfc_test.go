package cache

import (
	"testing"
	"time"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

// RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM), capped by
// MaxNegTTL, and the SOA is served with its decremented TTL.
func TestNegativeCachingRFC2308(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rcode   int
		answer  []string
		soa     string
		cfg     Config
		wantTTL uint32
	}{
		{"NXDOMAIN: MINIMUM below TTL", dns.RcodeNameError, nil,
			"example. 3600 IN SOA ns.example. h.example. 1 7200 900 1209600 300", Config{}, 300},
		{"NXDOMAIN: SOA TTL below MINIMUM", dns.RcodeNameError, nil,
			"example. 120 IN SOA ns.example. h.example. 1 7200 900 1209600 86400", Config{}, 120},
		{"NODATA", dns.RcodeSuccess, nil,
			"example. 3600 IN SOA ns.example. h.example. 1 7200 900 1209600 600", Config{}, 600},
		{"NODATA after CNAME with a shorter TTL", dns.RcodeSuccess, []string{"a.example. 30 IN CNAME b.example."},
			"example. 3600 IN SOA ns.example. h.example. 1 7200 900 1209600 600", Config{}, 30},
		{"capped by MaxNegTTL", dns.RcodeNameError, nil,
			"example. 86400 IN SOA ns.example. h.example. 1 7200 900 1209600 86400", Config{MaxNegTTL: 15 * time.Minute}, 900},
		{"default cap 1h", dns.RcodeNameError, nil,
			"example. 86400 IN SOA ns.example. h.example. 1 7200 900 1209600 86400", Config{}, 3600},
		{"MinTTL does not lengthen negatives", dns.RcodeNameError, nil,
			"example. 10 IN SOA ns.example. h.example. 1 7200 900 1209600 10", Config{MinTTL: time.Hour}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.MaxStale = -1
			c, clk := newCache(t, tc.cfg)
			req := query("a.example.", dns.TypeA, false, false)
			c.Set(req, reply(req, tc.rcode, rrs(t, tc.answer...), rrs(t, tc.soa, "example. 3600 IN NS ns.example."), nil))
			m, fr := c.Get(req, false)
			if fr != resolver.Fresh {
				t.Fatalf("not cached: %v", fr)
			}
			if m.Rcode != tc.rcode || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Fatalf("rcode %d authority %v: want rcode %d and the SOA alone", m.Rcode, m.Ns, tc.rcode)
			}
			if got := m.Ns[0].Header().Ttl; got != tc.wantTTL {
				t.Errorf("SOA TTL %d, want %d", got, tc.wantTTL)
			}
			clk.Advance(time.Duration(tc.wantTTL-1) * time.Second)
			if m, _ := c.Get(req, false); m == nil || m.Ns[0].Header().Ttl != 1 {
				t.Errorf("SOA TTL not decremented to 1: %v", m)
			}
			clk.Advance(time.Second)
			if _, fr := c.Get(req, false); fr != resolver.Miss {
				t.Errorf("alive after its negative TTL: %v", fr)
			}
		})
	}
}

// RFC 9520 §3.2: a resolution failure is cached for a short time (1 s to
// 5 min); here 5 s by default.
func TestServFailCachedBriefly(t *testing.T) {
	c, clk := newCache(t, Config{})
	req := query("broken.example.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeServerFailure, nil, nil, nil))
	m, fr := c.Get(req, false)
	if fr != resolver.Fresh || m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("SERVFAIL not cached: %v %v", fr, m)
	}
	clk.Advance(5 * time.Second)
	if _, fr := c.Get(req, false); fr != resolver.Miss {
		t.Errorf("SERVFAIL alive after 5s: %v", fr)
	}
	if _, fr := c.Get(req, true); fr != resolver.Miss {
		t.Errorf("a SERVFAIL must never be served stale: %v", fr)
	}

	off, _ := newCache(t, Config{ServFailTTL: -1})
	off.Set(req, reply(req, dns.RcodeServerFailure, nil, nil, nil))
	if _, fr := off.Get(req, false); fr != resolver.Miss {
		t.Errorf("ServFailTTL -1 still caches SERVFAIL")
	}
}

// A SERVFAIL from a refresh never replaces a usable answer.
func TestServFailKeepsAnswers(t *testing.T) {
	c, clk := newCache(t, Config{})
	req := query("a.example.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil))
	c.Set(req, reply(req, dns.RcodeServerFailure, nil, nil, nil))
	if m, fr := c.Get(req, false); fr != resolver.Fresh || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("fresh answer replaced by SERVFAIL: %v", m)
	}
	clk.Advance(61 * time.Second)
	if _, fr := c.Get(req, false); fr != resolver.Miss {
		t.Fatalf("expired entry served without serve-stale mode: %v", fr)
	}
	// The refresh failed: RFC 8767 §5's failure recheck timer serves stale
	// for ServFailTTL without asking again.
	c.Set(req, reply(req, dns.RcodeServerFailure, nil, nil, nil))
	if m, fr := c.Get(req, false); fr != resolver.Stale || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("after a failed refresh: %v %v, want the stale answer", fr, m)
	}
	clk.Advance(5 * time.Second)
	if _, fr := c.Get(req, false); fr != resolver.Miss {
		t.Errorf("recheck timer did not end: %v", fr)
	}
}

// RFC 8767: expired answers are served, with TTL 30 and EDE 3, when upstreams
// fail, for up to MaxStale after expiry.
func TestServeStaleRFC8767(t *testing.T) {
	c, clk := newCache(t, Config{MaxStale: time.Hour})
	req := query("a.example.", dns.TypeA, true, false)
	plain := query("a.example.", dns.TypeA, false, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil))

	if _, fr := c.Get(req, true); fr != resolver.Fresh {
		t.Fatalf("fresh entry with stale=true: %v", fr)
	}
	clk.Advance(2 * time.Minute)
	if _, fr := c.Get(req, false); fr != resolver.Miss {
		t.Fatalf("stale served without upstream failure: %v", fr)
	}
	if _, fr := wireGet(t, c, req, 512); fr != resolver.Miss {
		t.Fatalf("AppendWire served stale outside stale-while-revalidate: %v", fr)
	}
	m, fr := c.Get(req, true)
	if fr != resolver.Stale || m.Answer[0].Header().Ttl != 30 {
		t.Fatalf("stale: %v %v, want TTL 30", fr, m)
	}
	if code, ok := ede(m); !ok || code != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("stale answer without EDE 3: %v", m.IsEdns0())
	}
	// RFC 8914 §3: no EDE (and no OPT) for a client without EDNS.
	if m, fr := c.Get(plain, true); fr != resolver.Stale || m.IsEdns0() != nil {
		t.Errorf("stale answer to a non-EDNS query: %v %v", fr, m)
	}
	clk.Advance(time.Hour)
	if _, fr := c.Get(req, true); fr != resolver.Miss {
		t.Errorf("served beyond MaxStale: %v", fr)
	}
	if st := c.Stats(); st.Entries != 0 || st.Stale != 2 {
		t.Errorf("stats %+v: want the entry gone and 2 stale served", st)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	c, clk := newCache(t, Config{StaleWhileRevalidate: true})
	req := query("a.example.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil))
	clk.Advance(61 * time.Second)
	// The wire path leaves stale entries to Get, which tells the resolver to
	// refresh.
	if _, fr := wireGet(t, c, req, 512); fr != resolver.Miss {
		t.Fatalf("AppendWire: %v, want the slow path", fr)
	}
	m, fr := c.Get(req, false)
	if fr != resolver.Stale || m.Answer[0].Header().Ttl != 30 {
		t.Fatalf("%v %v, want stale at once", fr, m)
	}
	if code, ok := ede(m); !ok || code != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("no EDE 3")
	}
	// The background refresh replaces it.
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.2"), nil, nil))
	if m, fr := c.Get(req, false); fr != resolver.Fresh || m.Answer[0].(*dns.A).A.String() != "192.0.2.2" {
		t.Errorf("after refresh: %v %v", fr, m)
	}
}

func TestPrefetchSignal(t *testing.T) {
	c, clk := newCache(t, Config{PrefetchHits: 3})
	req := query("a.example.", dns.TypeA, false, false)
	set := func() { c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 100 IN A 192.0.2.1"), nil, nil)) }
	set()
	get := func() resolver.Freshness { _, fr := c.Get(req, false); return fr }

	clk.Advance(91 * time.Second) // 9% left, but not yet popular
	if fr := get(); fr != resolver.Fresh {
		t.Fatalf("hit 1: %v", fr)
	}
	if fr := get(); fr != resolver.Fresh {
		t.Fatalf("hit 2: %v", fr)
	}
	// The wire path declines the due entry without using up the signal.
	if _, fr := wireGet(t, c, req, 512); fr != resolver.Miss {
		t.Fatalf("AppendWire on an entry due for prefetch: %v, want Miss", fr)
	}
	if fr := get(); fr != resolver.Refresh {
		t.Fatalf("hit 3 near expiry: %v, want Refresh", fr)
	}
	if _, fr := wireGet(t, c, req, 512); fr != resolver.Fresh {
		t.Fatalf("second signal for the same entry: %v", fr)
	}
	set() // refreshed: a new entry, counting from zero
	for i := range 3 {
		if fr := get(); fr != resolver.Fresh {
			t.Fatalf("new entry, hit %d with 100%% TTL left: %v", i, fr)
		}
	}
	clk.Advance(95 * time.Second)
	if fr := get(); fr != resolver.Refresh {
		t.Errorf("popular and near expiry: %v", fr)
	}
	if st := c.Stats(); st.Prefetches != 2 {
		t.Errorf("%d prefetches signalled, want 2", st.Prefetches)
	}

	off, clk2 := newCache(t, Config{PrefetchHits: -1})
	off.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 100 IN A 192.0.2.1"), nil, nil))
	clk2.Advance(99 * time.Second)
	for range 5 {
		if _, fr := off.Get(req, false); fr != resolver.Fresh {
			t.Fatalf("prefetch disabled but got %v", fr)
		}
	}
}

// RFC 6840 §5.8: AD only goes to clients that asked for DNSSEC (DO), and
// RFC 4035 §3.2.2: CD is the client's.
func TestADAndCD(t *testing.T) {
	c, _ := newCache(t, Config{})
	for _, do := range []bool{false, true} {
		req := query("a.example.", dns.TypeA, true, do)
		req.CheckingDisabled = true
		resp := reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil)
		resp.AuthenticatedData = true
		c.Set(req, resp)
		for _, via := range []string{"Get", "AppendWire"} {
			var m *dns.Msg
			if via == "Get" {
				m, _ = c.Get(req, false)
			} else {
				m, _ = wireGet(t, c, req, 512)
			}
			if m == nil || m.AuthenticatedData != do || !m.CheckingDisabled || m.IsEdns0().Do() != do {
				t.Errorf("DO=%v %s: %v, want AD=%v, CD and DO echoed", do, via, m, do)
			}
		}
	}
}
