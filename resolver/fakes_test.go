package resolver

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeUpstream answers through OnExchange and counts calls.
type fakeUpstream struct {
	name       string
	OnExchange func(ctx context.Context, req *dns.Msg) (*dns.Msg, error)
	calls      atomic.Int32
}

func (f *fakeUpstream) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	f.calls.Add(1)
	return f.OnExchange(ctx, req)
}
func (f *fakeUpstream) String() string { return f.name }
func (f *fakeUpstream) Close() error   { return nil }

// answering returns an upstream that answers every A query with addr.
func answering(name, addr string) *fakeUpstream {
	return &fakeUpstream{name: name, OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		return answerA(req, addr), nil
	}}
}

// failing returns an upstream that fails the test if it is ever called.
func failing(t *testing.T) *fakeUpstream {
	return &fakeUpstream{name: "never", OnExchange: func(_ context.Context, req *dns.Msg) (*dns.Msg, error) {
		t.Errorf("upstream called for %v", req.Question)
		return nil, net.ErrClosed
	}}
}

func answerA(req *dns.Msg, addr string) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	q := req.Question[0]
	if q.Qtype == dns.TypeA {
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A:   net.ParseIP(addr),
		}}
	}
	return m
}

// fakeCache delegates to function fields; nil fields mean a miss / no-op.
type fakeCache struct {
	OnGet        func(req *dns.Msg, stale bool) (*dns.Msg, Freshness)
	OnAppendWire func(dst, raw []byte, max int) ([]byte, Freshness)
	OnSet        func(req, resp *dns.Msg)
	gets, wires  atomic.Int32
}

func (c *fakeCache) Get(req *dns.Msg, stale bool) (*dns.Msg, Freshness) {
	c.gets.Add(1)
	if c.OnGet == nil {
		return nil, Miss
	}
	return c.OnGet(req, stale)
}

func (c *fakeCache) AppendWire(dst, raw []byte, max int) ([]byte, Freshness) {
	c.wires.Add(1)
	if c.OnAppendWire == nil {
		return dst, Miss
	}
	return c.OnAppendWire(dst, raw, max)
}

func (c *fakeCache) Set(req, resp *dns.Msg) {
	if c.OnSet != nil {
		c.OnSet(req, resp)
	}
}

// memCache is a minimal in-memory cache holding packed responses by
// lower-case wire name and type; it never expires anything. Its hits do not
// allocate on the wire path, so benchmarks measure the resolver.
type memCache struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func newMemCache() *memCache { return &memCache{m: map[string][]byte{}} }

// wireKey is the packed question (name lower-cased, type, class).
func wireKey(raw []byte) (int, bool) {
	off := 12
	for off < len(raw) && raw[off] != 0 {
		off += int(raw[off]) + 1
	}
	if off+5 > len(raw) {
		return 0, false
	}
	return off + 5, true
}

func (c *memCache) Set(req, resp *dns.Msg) {
	b, err := resp.Pack()
	if err != nil {
		return
	}
	end, _ := wireKey(b)
	c.mu.Lock()
	c.m[strings.ToLower(string(b[12:end]))] = b
	c.mu.Unlock()
}

func (c *memCache) AppendWire(dst, raw []byte, max int) ([]byte, Freshness) {
	end, ok := wireKey(raw)
	if !ok {
		return dst, Miss
	}
	var k [300]byte
	n := copy(k[:], raw[12:end])
	for i := range n {
		if 'A' <= k[i] && k[i] <= 'Z' {
			k[i] += 'a' - 'A'
		}
	}
	c.mu.RLock()
	b, ok := c.m[string(k[:n])]
	c.mu.RUnlock()
	if !ok || len(b) > max {
		return dst, Miss
	}
	start := len(dst)
	dst = append(dst, b...)
	binary.BigEndian.PutUint16(dst[start:], binary.BigEndian.Uint16(raw))
	copy(dst[start+12:], raw[12:end]) // the client's spelling
	return dst, Fresh
}

func (c *memCache) Get(req *dns.Msg, stale bool) (*dns.Msg, Freshness) {
	raw, err := req.Pack()
	if err != nil {
		return nil, Miss
	}
	b, fr := c.AppendWire(nil, raw, 65535)
	if fr == Miss {
		return nil, Miss
	}
	m := new(dns.Msg)
	if m.Unpack(b) != nil {
		return nil, Miss
	}
	return m, fr
}

// query builds a Query from 127.0.0.1 over UDP with EDNS.
func query(name string, qtype uint16) *Query {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	return &Query{
		Msg:       m,
		Client:    netip.MustParseAddrPort("127.0.0.1:40000"),
		Local:     netip.MustParseAddrPort("127.0.0.1:53"),
		Transport: UDP,
		Listener:  "udp://127.0.0.1:53",
		MaxSize:   1232,
	}
}

func from(q *Query, addr string) *Query {
	q.Client = netip.AddrPortFrom(netip.MustParseAddr(addr), 40000)
	return q
}

func mustNew(t testing.TB, cfg Config) *Resolver {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// serve runs ServeDNS and checks that it did not modify the query.
func serve(t testing.TB, r *Resolver, q *Query) *dns.Msg {
	t.Helper()
	before, err := q.Msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.ServeDNS(context.Background(), q)
	if err != nil {
		t.Fatalf("ServeDNS(%v): %v", q.Msg.Question, err)
	}
	if after, _ := q.Msg.Pack(); string(after) != string(before) {
		t.Fatalf("ServeDNS modified the query")
	}
	if !m.RecursionAvailable {
		t.Errorf("RA not set")
	}
	if len(m.Question) != 1 || m.Question[0] != q.Msg.Question[0] {
		t.Errorf("question %v, want the client's %v", m.Question, q.Msg.Question)
	}
	if _, err := m.Pack(); err != nil {
		t.Fatalf("response does not pack: %v", err)
	}
	return m
}

func ede(m *dns.Msg) (uint16, bool) {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e.InfoCode, true
			}
		}
	}
	return 0, false
}

// counter reads a counter from reg by name and label values.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
