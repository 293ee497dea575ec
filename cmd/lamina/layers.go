package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/proxy"
	"github.com/laminadns/lamina/resolver"
)

// layerStats counts, per hop, which protection traffic actually had: the
// client's transport, TLS version, cipher suite and ECH per listener, and for
// proxied connections whether the client spoke TLS inside the tunnel. It
// outlives generations (it belongs to shared) and is safe for concurrent use.
type layerStats struct {
	clients sync.Map // clientKey → *atomic.Uint64
	proxies sync.Map // proxy name → *proxyCounts
}

// clientKey is one combination of what protected a query from its client.
type clientKey struct {
	listener  string
	transport resolver.Transport
	version   uint16
	cipher    uint16
	ech       bool
}

type proxyCounts struct {
	dials, failed, tls, plain atomic.Uint64
}

func newLayerStats() *layerStats { return &layerStats{} }

// count records one query. The key set is bounded by listeners × the few TLS
// versions and suites Lamina accepts.
func (l *layerStats) count(q *resolver.Query) {
	k := clientKey{listener: q.Listener, transport: q.Transport}
	if q.TLS != nil {
		k.version, k.cipher, k.ech = q.TLS.Version, q.TLS.CipherSuite, q.TLS.ECHAccepted
	}
	c, ok := l.clients.Load(k)
	if !ok {
		c, _ = l.clients.LoadOrStore(k, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// handler wraps h (keeping its cache-hit fast path) so that every query is
// counted by what protected it.
func (l *layerStats) handler(h resolver.Handler) resolver.Handler {
	if l == nil {
		return h
	}
	if wh, ok := h.(resolver.WireHandler); ok {
		return countingWire{countingHandler{h, l}, wh}
	}
	return countingHandler{h, l}
}

type countingHandler struct {
	h resolver.Handler
	l *layerStats
}

func (c countingHandler) ServeDNS(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
	c.l.count(q)
	return c.h.ServeDNS(ctx, q)
}

type countingWire struct {
	countingHandler
	wh resolver.WireHandler
}

// ServeWire counts only the queries it answers; the others come back
// through ServeDNS and are counted there.
func (c countingWire) ServeWire(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
	out, ok := c.wh.ServeWire(q, raw, dst)
	if ok {
		c.l.count(q)
	}
	return out, ok
}

func (l *layerStats) proxy(name string) *proxyCounts {
	c, ok := l.proxies.Load(name)
	if !ok {
		c, _ = l.proxies.LoadOrStore(name, new(proxyCounts))
	}
	return c.(*proxyCounts)
}

// dialer wraps a proxy's dialer so that each connection's first client bytes
// tell whether the client runs TLS end to end through the proxy (a TLS
// record starts with content type 22, handshake).
func (l *layerStats) dialer(name string, d proxy.Dialer) proxy.Dialer {
	if l == nil {
		return d
	}
	return &sniffDialer{d: d, c: l.proxy(name)}
}

type sniffDialer struct {
	d proxy.Dialer
	c *proxyCounts
}

func (s *sniffDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := s.d.DialContext(ctx, network, address)
	if err != nil {
		s.c.failed.Add(1)
		return nil, err
	}
	s.c.dials.Add(1)
	return &sniffConn{Conn: conn, c: s.c}, nil
}

// sniffConn classifies a connection by its first written byte. Embedding the
// interface hides any ReadFrom, so io.Copy goes through Write.
type sniffConn struct {
	net.Conn
	c    *proxyCounts
	seen atomic.Bool
}

func (s *sniffConn) Write(p []byte) (int, error) {
	if len(p) > 0 && !s.seen.Load() && s.seen.CompareAndSwap(false, true) {
		if p[0] == 0x16 {
			s.c.tls.Add(1)
		} else {
			s.c.plain.Add(1)
		}
	}
	return s.Conn.Write(p)
}

// clientLayer is the client→Lamina hop of one listener.
type clientLayer struct {
	Listener  string        `json:"listener"`
	URL       string        `json:"url,omitempty"`
	Transport string        `json:"transport"`
	Queries   uint64        `json:"queries"`
	Sessions  []clientCount `json:"by_protection,omitempty"`
}

// clientCount is the number of queries seen with one protection.
type clientCount struct {
	Transport   string `json:"transport"`
	TLSVersion  string `json:"tls_version,omitempty"`
	Cipher      string `json:"cipher,omitempty"`
	ECHAccepted bool   `json:"ech_accepted"`
	Queries     uint64 `json:"queries"`
}

// clientLayers returns the client hop of every listener in urls (name →
// URL), including listeners that have seen no query yet, and pseudo
// listeners (the proxies' own lookups) that have.
func (l *layerStats) clientLayers(urls map[string]string) []clientLayer {
	by := map[string]*clientLayer{}
	for name, u := range urls {
		by[name] = &clientLayer{Listener: name, URL: u, Transport: strings.SplitN(u, ":", 2)[0]}
	}
	l.clients.Range(func(k, v any) bool {
		key := k.(clientKey)
		cl := by[key.listener]
		if cl == nil {
			cl = &clientLayer{Listener: key.listener, Transport: "internal"}
			by[key.listener] = cl
		}
		n := v.(*atomic.Uint64).Load()
		cl.Queries += n
		cc := clientCount{Transport: key.transport.String(), ECHAccepted: key.ech, Queries: n}
		if key.version != 0 {
			cc.TLSVersion = tls.VersionName(key.version)
			cc.Cipher = tls.CipherSuiteName(key.cipher)
		}
		cl.Sessions = append(cl.Sessions, cc)
		return true
	})
	out := make([]clientLayer, 0, len(by))
	for _, cl := range by {
		slices.SortFunc(cl.Sessions, func(a, b clientCount) int {
			return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
		})
		out = append(out, *cl)
	}
	slices.SortFunc(out, func(a, b clientLayer) int { return strings.Compare(a.Listener, b.Listener) })
	return out
}
