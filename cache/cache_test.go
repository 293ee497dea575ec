package cache

import (
	"slices"
	"testing"
	"time"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

var _ resolver.Cache = (*Cache)(nil)

func TestTTLDecayAndExpiry(t *testing.T) {
	c, clk := newCache(t, Config{MaxStale: -1, PrefetchHits: -1})
	req := query("example.com.", dns.TypeA, false, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "example.com. 300 IN A 192.0.2.1", "example.com. 200 IN A 192.0.2.2"), nil, nil))

	steps := []struct {
		advance time.Duration
		want    resolver.Freshness
		ttl     uint32
	}{
		{0, resolver.Fresh, 200}, // the RRset's minimum
		{50 * time.Second, resolver.Fresh, 150},
		{500 * time.Millisecond, resolver.Fresh, 150}, // partial seconds round up
		{149 * time.Second, resolver.Fresh, 1},
		{500 * time.Millisecond, resolver.Miss, 0}, // expired, serve-stale off
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		for _, via := range []string{"Get", "AppendWire"} {
			var m *dns.Msg
			var fr resolver.Freshness
			if via == "Get" {
				m, fr = c.Get(req, false)
			} else {
				m, fr = wireGet(t, c, req, 512)
			}
			if fr != s.want {
				t.Fatalf("step %d %s: freshness %v, want %v", i, via, fr, s.want)
			}
			if m == nil {
				continue
			}
			if got := ttls(m); !slices.Equal(got, []uint32{s.ttl, s.ttl}) {
				t.Errorf("step %d %s: TTLs %v, want %d", i, via, got, s.ttl)
			}
		}
	}
	if st := c.Stats(); st.Hits != 8 || st.Misses != 1 {
		t.Errorf("stats %+v: want 8 hits, 1 miss (AppendWire misses are Get's to count)", st)
	}
}

func TestCasePreservedAndID(t *testing.T) {
	c, _ := newCache(t, Config{})
	req := query("www.example.com.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "www.example.com. 60 IN A 192.0.2.1"), nil, nil))

	q := query("WwW.eXaMpLe.CoM.", dns.TypeA, true, false)
	q.Id = 0xbeef
	q.RecursionDesired = false
	for _, via := range []string{"Get", "AppendWire"} {
		var m *dns.Msg
		var fr resolver.Freshness
		if via == "Get" {
			m, fr = c.Get(q, false)
		} else {
			m, fr = wireGet(t, c, q, 512)
		}
		if fr != resolver.Fresh {
			t.Fatalf("%s: %v, want a case-insensitive hit", via, fr)
		}
		if m.Id != 0xbeef || m.Question[0].Name != "WwW.eXaMpLe.CoM." || m.RecursionDesired || !m.Response {
			t.Errorf("%s: id %#x question %q RD %v: want the client's ID, case and RD", via, m.Id, m.Question[0].Name, m.RecursionDesired)
		}
		if opt := m.IsEdns0(); opt == nil || opt.UDPSize() != 1232 || opt.Do() {
			t.Errorf("%s: OPT %v, want one without DO", via, opt)
		}
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Errorf("%s: answer %v", via, m.Answer)
		}
	}
	// Without EDNS in the query there is no OPT in the answer.
	q = query("WWW.example.com.", dns.TypeA, false, false)
	if m, _ := wireGet(t, c, q, 512); m == nil || m.IsEdns0() != nil {
		t.Errorf("no-EDNS query: got %v, want a hit without OPT", m)
	}
}

func TestKeyIncludesTypeClassDOCD(t *testing.T) {
	c, _ := newCache(t, Config{})
	req := query("example.com.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "example.com. 60 IN A 192.0.2.1"), nil, nil))

	cd := query("example.com.", dns.TypeA, true, false)
	cd.CheckingDisabled = true
	ch := query("example.com.", dns.TypeA, true, false)
	ch.Question[0].Qclass = dns.ClassCHAOS
	for name, q := range map[string]*dns.Msg{
		"DO":    query("example.com.", dns.TypeA, true, true),
		"CD":    cd,
		"AAAA":  query("example.com.", dns.TypeAAAA, true, false),
		"CHAOS": ch,
		"other": query("example.org.", dns.TypeA, true, false),
	} {
		if _, fr := c.Get(q, false); fr != resolver.Miss {
			t.Errorf("%s: %v, want a different key", name, fr)
		}
	}
	// The plain query without EDNS shares the DO=0 entry.
	if _, fr := c.Get(query("example.com.", dns.TypeA, false, false), false); fr != resolver.Fresh {
		t.Errorf("no EDNS: %v, want the DO=0 entry", fr)
	}
}

func TestTTLClamp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		ttl      int
		want     uint32
		isCached bool
	}{
		{"min", Config{MinTTL: time.Minute}, 10, 60, true},
		{"max", Config{MaxTTL: time.Hour}, 86400, 3600, true},
		{"default max 1 day", Config{}, 7 * 86400, 86400, true},
		{"ttl 0 not cached", Config{}, 0, 0, false},
		{"ttl 0 with min", Config{MinTTL: 5 * time.Second}, 0, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(t, tc.cfg)
			req := query("example.com.", dns.TypeA, false, false)
			a := rr(t, "example.com. 1 IN A 192.0.2.1")
			a.Header().Ttl = uint32(tc.ttl)
			c.Set(req, reply(req, dns.RcodeSuccess, []dns.RR{a}, nil, nil))
			m, fr := c.Get(req, false)
			if (fr != resolver.Miss) != tc.isCached {
				t.Fatalf("freshness %v, cached want %v", fr, tc.isCached)
			}
			if m != nil && m.Answer[0].Header().Ttl != tc.want {
				t.Errorf("TTL %d, want %d", m.Answer[0].Header().Ttl, tc.want)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"min above max":    {MinTTL: time.Hour, MaxTTL: time.Minute},
		"servfail too low": {ServFailTTL: time.Millisecond},
		"servfail too big": {ServFailTTL: time.Hour},
		"negative entries": {MaxEntries: -1},
		"negative bytes":   {MaxBytes: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(Config{}); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestAppendWireAppendsAndDeclines(t *testing.T) {
	c, _ := newCache(t, Config{})
	req := query("example.com.", dns.TypeA, true, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "example.com. 60 IN A 192.0.2.1"), nil, nil))
	raw, _ := req.Pack()

	prefix := []byte{0xAA, 0xBB}
	out, fr := c.AppendWire(prefix, raw, 512)
	if fr != resolver.Fresh || out[0] != 0xAA || out[1] != 0xBB {
		t.Fatalf("AppendWire must append after dst's bytes (%v)", fr)
	}
	m := new(dns.Msg)
	if err := m.Unpack(out[2:]); err != nil || m.Id != req.Id {
		t.Fatalf("unpack: %v", err)
	}
	size := len(out) - 2
	if out, fr := c.AppendWire(nil, raw, size-1); fr != resolver.Miss || len(out) != 0 {
		t.Errorf("max one byte short: %v, %d bytes; want Miss and nothing appended", fr, len(out))
	}

	withCookie := query("example.com.", dns.TypeA, true, false)
	withCookie.IsEdns0().Option = append(withCookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	if m, fr := wireGet(t, c, withCookie, 512); fr != resolver.Fresh || len(m.IsEdns0().Option) != 0 {
		t.Errorf("client cookie: %v %v, want a hit that ignores it", fr, m)
	}
	badCookie := query("example.com.", dns.TypeA, true, false)
	badCookie.IsEdns0().Option = append(badCookie.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "01020304"})
	padded := query("example.com.", dns.TypeA, true, false)
	padded.IsEdns0().Option = append(padded.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 8)})
	if m, fr := wireGet(t, c, padded, 512); fr != resolver.Fresh || len(m.IsEdns0().Option) != 0 {
		t.Errorf("padded query: %v %v, want a hit, unpadded (the transport pads)", fr, m)
	}
	keepalive := query("example.com.", dns.TypeA, true, false)
	keepalive.IsEdns0().Option = append(keepalive.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	if m, fr := wireGet(t, c, keepalive, 512); fr != resolver.Fresh || len(m.IsEdns0().Option) != 0 {
		t.Errorf("keepalive query: %v %v, want a hit without the option (the transport adds it)", fr, m)
	}
	if m, fr := wireGet(t, c, badCookie, 512); fr != resolver.Miss || m != nil {
		t.Errorf("malformed cookie: %v, want the slow path", fr)
	}
	badVers := query("example.com.", dns.TypeA, true, false)
	badVers.IsEdns0().SetVersion(1)
	resp := req.Copy()
	resp.Response = true
	twoQ := req.Copy()
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	notify := req.Copy()
	notify.Opcode = dns.OpcodeNotify
	for name, q := range map[string]*dns.Msg{
		"EDNS version":  badVers,
		"QR set":        resp,
		"two questions": twoQ,
		"NOTIFY":        notify,
	} {
		if m, fr := wireGet(t, c, q, 4096); fr != resolver.Miss || m != nil {
			t.Errorf("%s: %v, want the slow path", name, fr)
		}
	}
	for name, raw := range map[string][]byte{
		"short":    raw[:14],
		"trailing": append(slices.Clone(raw), 0),
		"pointer":  append(append(slices.Clone(raw[:12]), 0xC0, 12), raw[len(raw)-15:]...),
	} {
		if _, fr := c.AppendWire(nil, raw, 4096); fr != resolver.Miss {
			t.Errorf("%s: %v, want Miss", name, fr)
		}
	}
}

func TestFlush(t *testing.T) {
	c, _ := newCache(t, Config{})
	for _, n := range []string{"a.example.", "b.example.", "A.example."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
			req := query(n, qt, false, false)
			var ans []dns.RR
			if qt == dns.TypeA {
				ans = rrs(t, n+" 60 IN A 192.0.2.1")
			} else {
				ans = rrs(t, n+` 60 IN TXT "x"`)
			}
			c.Set(req, reply(req, dns.RcodeSuccess, ans, nil, nil))
		}
	}
	if st := c.Stats(); st.Entries != 4 {
		t.Fatalf("%d entries, want 4 (A.example. is a.example.)", st.Entries)
	}
	if n := c.FlushName("A.EXAMPLE"); n != 2 {
		t.Errorf("FlushName removed %d, want 2", n)
	}
	if _, fr := c.Get(query("a.example.", dns.TypeTXT, false, false), false); fr != resolver.Miss {
		t.Error("a.example. TXT survived FlushName")
	}
	if _, fr := c.Get(query("b.example.", dns.TypeTXT, false, false), false); fr != resolver.Fresh {
		t.Error("b.example. TXT lost by FlushName of another name")
	}
	c.Flush()
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after Flush: %+v", st)
	}
}

// TestFreshnessValues pins the structural match with resolver.Freshness.
func TestFreshnessValues(t *testing.T) {
	if Miss != resolver.Miss || Fresh != resolver.Fresh || Refresh != resolver.Refresh || Stale != resolver.Stale {
		t.Fatal("cache's Freshness values differ from resolver's")
	}
}
