package h2

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"

	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cacheHandler answers "hN.bench.test. A" with 10.0.x.y (TTL 300) and
// everything else NXDOMAIN. Names it has answered once are "cached": later
// queries for them are answered by ServeWire, like the resolver's cache.
// slow names (prefix "slow") wait delay in ServeDNS.
type cacheHandler struct {
	delay time.Duration
	mu    sync.Mutex
	cache map[string][]byte // question (lower-cased wire) → response
	wire  atomic.Int64      // answers from ServeWire
	dnsN  atomic.Int64      // answers from ServeDNS
	lastQ atomic.Pointer[resolver.Query]
}

func newCache() *cacheHandler { return &cacheHandler{cache: map[string][]byte{}} }

func (h *cacheHandler) ServeDNS(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
	h.dnsN.Add(1)
	cp := *q
	h.lastQ.Store(&cp)
	qn := q.Msg.Question[0]
	if len(qn.Name) > 4 && qn.Name[:4] == "slow" {
		select {
		case <-time.After(h.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.RecursionAvailable = true
	var n int
	if _, err := fmtSscan(qn.Name, &n); err == nil && qn.Qtype == dns.TypeA {
		rr := &dns.A{Hdr: dns.RR_Header{Name: qn.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
			A: net.IPv4(10, 0, byte(n>>8), byte(n))}
		m.Answer = append(m.Answer, rr)
	} else {
		m.Rcode = dns.RcodeNameError
		soa, _ := dns.NewRR("bench.test. 60 IN SOA ns.bench.test. a.bench.test. 1 3600 600 86400 60")
		m.Ns = append(m.Ns, soa)
	}
	if q.Msg.IsEdns0() == nil {
		if wire, err := m.Pack(); err == nil {
			h.mu.Lock()
			h.cache[questionKey(q.Msg)] = wire
			h.mu.Unlock()
		}
	}
	return m, nil
}

// ServeWire answers queries without EDNS whose question was seen before.
func (h *cacheHandler) ServeWire(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
	if len(raw) < 12 || raw[11] != 0 {
		return nil, false
	}
	h.mu.Lock()
	wire, ok := h.cache[string(raw[12:])]
	h.mu.Unlock()
	if !ok {
		return nil, false
	}
	h.wire.Add(1)
	dst = append(dst, wire...)
	dst[0], dst[1] = raw[0], raw[1]
	dst[2] = dst[2]&^1 | raw[2]&1
	return dst, true
}

func questionKey(m *dns.Msg) string {
	c := new(dns.Msg)
	c.Question = m.Question
	b, _ := c.Pack()
	return string(b[12:])
}

func fmtSscan(name string, n *int) (int, error) {
	// hN.bench.test.
	if len(name) < 2 || name[0] != 'h' {
		return 0, strconv.ErrSyntax
	}
	i := 1
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	v, err := strconv.Atoi(name[1:i])
	*n = v
	return 1, err
}

// env is an h2.Server behind a TLS listener that hands h2 connections to
// ServeConn, as package doh's TLSNextProto hook does.
type env struct {
	p    *tlsconf.Provider
	h    *cacheHandler
	s    *Server
	ln   net.Listener
	port int
	url  string
	wg   sync.WaitGroup
}

func start(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{p: tlsconftest.Provider(t, false), h: newCache()}
	if cfg.Handler == nil {
		cfg.Handler = e.h
	} else if h, ok := cfg.Handler.(*cacheHandler); ok {
		e.h = h
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	tcfg := e.p.ServerConfig(tlsconf.DoH)
	tcfg.NextProtos = []string{"h2"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
	ln = WrapListener(ln)
	e.ln = ln
	e.url = "https://" + tlsconftest.ServiceName + ":" + strconv.Itoa(e.port) + s.cfg.Path
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				tc := tls.Server(c, tcfg)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := tc.HandshakeContext(ctx)
				cancel()
				if err != nil {
					c.Close()
					return
				}
				s.ServeConn(context.Background(), tc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.Close()
		e.wg.Wait()
	})
	return e
}

// client is Go's x/net HTTP/2 transport, dialing the env's port whatever
// the URL's host.
func (e *env) client(t testing.TB) *http.Client {
	cfg := tlsconftest.ClientConfig(t, e.p, []string{"h2"}, nil)
	tr := &http2.Transport{TLSClientConfig: cfg, DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, network, e.ln.Addr().String())
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func query(name string, qtype uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0
	b, _ := m.Pack()
	return b
}

func getURL(base string, raw []byte) string {
	return base + "?dns=" + base64.RawURLEncoding.EncodeToString(raw)
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
