package cache

import (
	"fmt"
	"sync"
	"testing"

	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
)

func setA(t testing.TB, c *Cache, name string) *dns.Msg {
	req := query(name, dns.TypeA, false, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, name+" 300 IN A 192.0.2.1"), nil, nil))
	return req
}

func TestEvictionByEntries(t *testing.T) {
	c, _ := newCache(t, Config{MaxEntries: 10})
	for i := range 10 {
		setA(t, c, fmt.Sprintf("n%d.example.", i))
	}
	// Touch n0 so that n1 is the least recently used.
	if _, fr := c.Get(query("n0.example.", dns.TypeA, false, false), false); fr != resolver.Fresh {
		t.Fatal("n0 missing")
	}
	for i := 10; i < 15; i++ {
		setA(t, c, fmt.Sprintf("n%d.example.", i))
	}
	st := c.Stats()
	if st.Entries != 10 || st.Evictions != 5 {
		t.Fatalf("stats %+v: want 10 entries, 5 evictions", st)
	}
	for name, want := range map[string]bool{"n0": true, "n1": false, "n5": false, "n6": true, "n14": true} {
		_, fr := c.Get(query(name+".example.", dns.TypeA, false, false), false)
		if (fr == resolver.Fresh) != want {
			t.Errorf("%s cached %v, want %v", name, fr == resolver.Fresh, want)
		}
	}
}

func TestEvictionByBytes(t *testing.T) {
	probe, _ := newCache(t, Config{})
	setA(t, probe, "n00.example.")
	per := probe.Stats().Bytes
	if per <= entryOverhead {
		t.Fatalf("entry size %d", per)
	}
	c, _ := newCache(t, Config{MaxEntries: 1000, MaxBytes: 5*per + per/2})
	for i := range 20 {
		setA(t, c, fmt.Sprintf("n%02d.example.", i))
		if st := c.Stats(); st.Bytes > 5*per+per/2 || st.Entries > 5 {
			t.Fatalf("after %d sets: %+v over the byte bound %d", i+1, st, 5*per+per/2)
		}
	}
	st := c.Stats()
	if st.Entries != 5 || st.Bytes != 5*per || st.Evictions != 15 {
		t.Errorf("stats %+v: want 5 entries of %d bytes, 15 evictions", st, per)
	}
	// Replacing an entry keeps the byte count exact.
	setA(t, c, "n19.example.")
	if st2 := c.Stats(); st2.Bytes != st.Bytes || st2.Entries != 5 {
		t.Errorf("replace changed accounting: %+v -> %+v", st, st2)
	}
}

func TestShardedBounds(t *testing.T) {
	c, _ := newCache(t, Config{MaxEntries: 8192})
	if len(c.shards) < 2 {
		t.Fatalf("%d shards, want sharding at this size", len(c.shards))
	}
	for i := range 20000 {
		req := query(fmt.Sprintf("n%d.example.", i), dns.TypeA, false, false)
		c.Set(req, reply(req, dns.RcodeSuccess, []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   []byte{192, 0, 2, 1},
		}}, nil, nil))
	}
	st := c.Stats()
	if st.Entries > 8192 || st.Entries < 8192*9/10 || st.Evictions != uint64(20000-st.Entries) {
		t.Errorf("stats %+v: want about 8192 entries and the rest evicted", st)
	}
	if n := c.FlushName("N19999.example"); n != 1 || c.Stats().Entries != st.Entries-1 {
		t.Errorf("FlushName across shards removed %d", n)
	}
}

// TestConcurrentUse is meant for -race: readers, writers and flushes at once.
func TestConcurrentUse(t *testing.T) {
	c, clk := newCache(t, Config{MaxEntries: 64, StaleWhileRevalidate: true})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for i := range 300 {
				name := fmt.Sprintf("n%d.example.", (g*7+i)%100)
				req := query(name, dns.TypeA, i%2 == 0, false)
				switch i % 5 {
				case 0:
					c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, name+" 2 IN A 192.0.2.1"), nil, nil))
				case 1:
					c.Get(req, i%3 == 0)
				case 2:
					raw, _ := req.Pack()
					out, fr := c.AppendWire(buf[:0], raw, 512)
					if fr != resolver.Miss {
						m := new(dns.Msg)
						if err := m.Unpack(out); err != nil || m.Id != req.Id {
							t.Errorf("bad concurrent hit: %v", err)
						}
					}
				case 3:
					clk.Advance(100_000_000)
				case 4:
					if i%50 == 4 {
						c.FlushName(name)
					}
					c.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Entries > 64 {
		t.Errorf("%d entries over the bound", st.Entries)
	}
}
