package cache

import (
	"bytes"
	"testing"
	"time"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

func fuzzSeeds(f *testing.F) {
	for _, m := range []*dns.Msg{
		reply(query("a.example.", dns.TypeA, true, true), dns.RcodeSuccess, []dns.RR{
			mustRR("a.example. 300 IN CNAME b.example."), mustRR("b.example. 60 IN A 192.0.2.1"),
			mustRR("b.example. 60 IN RRSIG A 13 2 60 20261231000000 20261101000000 1234 example. AAAA"),
		}, nil, nil),
		reply(query("X.example.", dns.TypeAAAA, false, false), dns.RcodeNameError, nil,
			[]dns.RR{mustRR("example. 300 IN SOA ns.example. h.example. 1 2 3 4 60")}, nil),
		reply(query("a.example.", dns.TypeMX, true, false), dns.RcodeServerFailure, nil, nil, nil),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func mustRR(s string) dns.RR {
	r, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return r
}

// FuzzCacheSetGet offers arbitrary responses to the cache: Set must never
// panic, and whatever comes back must answer the question it was asked.
func FuzzCacheSetGet(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := new(dns.Msg)
		if resp.Unpack(b) != nil || len(resp.Question) != 1 {
			return
		}
		c, clk := newCache(t, Config{})
		req := new(dns.Msg)
		req.Id = 0x4242
		req.Question = []dns.Question{resp.Question[0]}
		if opt := resp.IsEdns0(); opt != nil {
			req.SetEdns0(1232, opt.Do())
		}
		resp.Response = true
		c.Set(req, resp)
		for _, d := range []time.Duration{0, time.Hour, 48 * time.Hour} {
			clk.Advance(d)
			m, fr := c.Get(req, true)
			if fr == resolver.Miss {
				continue
			}
			if m.Id != req.Id || len(m.Question) != 1 || m.Question[0] != req.Question[0] {
				t.Fatalf("answer %v does not match question %v", m, req.Question)
			}
			raw, err := req.Pack()
			if err != nil {
				continue
			}
			out, wfr := c.AppendWire(nil, raw, 65535)
			if wfr != resolver.Miss && !bytes.Equal(out[:2], raw[:2]) {
				t.Fatal("AppendWire changed the ID")
			}
		}
	})
}

// FuzzAppendWire feeds arbitrary raw queries to the hit path of a populated
// cache: never a panic, and a hit is a well-formed answer to that query.
func FuzzAppendWire(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("a.example.", dns.TypeA, false, false),
		query("A.EXAMPLE.", dns.TypeA, true, false),
		query("b.example.", dns.TypeA, true, true),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	cookie := query("a.example.", dns.TypeA, true, false)
	cookie.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}
	b, _ := cookie.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1})
	c, _ := newCache(f, Config{})
	for _, do := range []bool{false, true} {
		req := query("a.example.", dns.TypeA, true, do)
		c.Set(req, reply(req, dns.RcodeSuccess, []dns.RR{mustRR("a.example. 60 IN A 192.0.2.1")}, nil, nil))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, fr := c.AppendWire([]byte{}, raw, 512)
		if fr == resolver.Miss {
			if len(out) != 0 {
				t.Fatal("Miss appended bytes")
			}
			return
		}
		m, q := new(dns.Msg), new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("hit is not a DNS message: %v", err)
		}
		if err := q.Unpack(raw); err != nil {
			t.Fatalf("hit for an unparsable query: %v", err)
		}
		if m.Id != q.Id || !m.Response || m.Question[0] != q.Question[0] || len(out) > 512 {
			t.Fatalf("answer %v does not match query %v", m, q)
		}
	})
}

// FuzzEntryFromWire offers arbitrary bytes as an entry shared through Redis:
// building, matching and answering from it must never panic, and an entry
// answers only its own question.
func FuzzEntryFromWire(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := entryFromWire(b, keyDO, positive, 60, 1e18)
		if !ok {
			return
		}
		for _, k := range [][]byte{nil, {0}, {0, 0, 1, 0, 1, keyDO}, b[headerLen:min(len(b), headerLen+6)]} {
			e.matches(k)
		}
		// The entry's own question, if it is a plain name, is its key.
		off := headerLen
		for off < len(b) && b[off] != 0 && b[off] <= 63 {
			off += 1 + int(b[off])
		}
		if off+5 > len(b) || b[off] != 0 || off+1-headerLen > maxName {
			return
		}
		name := b[headerLen : off+1]
		key := append(append([]byte{}, b[headerLen:off+5]...), keyDO)
		if !e.matches(key) {
			t.Fatal("entry does not match its own question")
		}
		if other := append(append([]byte{}, key...), 0); e.matches(other) {
			t.Fatal("entry matches a longer key")
		}
		out := e.appendTo(nil, 0x4242, true, name, true, true, false, 30)
		if len(out) != e.respLen(true, false) || !bytes.Equal(out[headerLen:off+1], name) {
			t.Fatalf("response of %d bytes, want %d", len(out), e.respLen(true, false))
		}
	})
}
