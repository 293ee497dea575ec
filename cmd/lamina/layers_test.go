package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/ipsec/ike/wire"
	"github.com/laminadns/lamina/resolver"
)

func TestSelectorString(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		sel  wire.Selector
		want string
	}{
		{wire.Selector{StartAddr: a("10.200.0.0"), EndAddr: a("10.200.0.255"), EndPort: 65535}, "10.200.0.0/24"},
		{wire.Selector{StartAddr: a("10.201.0.1"), EndAddr: a("10.201.0.1"), EndPort: 65535}, "10.201.0.1/32"},
		{wire.Selector{StartAddr: a("0.0.0.0"), EndAddr: a("255.255.255.255"), EndPort: 65535}, "0.0.0.0/0"},
		{wire.Selector{StartAddr: a("10.0.0.1"), EndAddr: a("10.0.0.9"), EndPort: 65535}, "10.0.0.1-10.0.0.9"},
		{wire.Selector{IPProto: 17, StartAddr: a("fd00::"), EndAddr: a("fd00::ffff"), StartPort: 53, EndPort: 53}, "fd00::/112 proto 17 ports 53-53"},
	} {
		if got := selectorString(tc.sel); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.sel, got, tc.want)
		}
	}
}

func TestCanonicalUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"udp://10.200.0.53":            "udp://10.200.0.53:53",
		"tcp://[2001:db8::1]":          "tcp://[2001:db8::1]:53",
		"tls://9.9.9.9":                "tls://9.9.9.9:853",
		"https://dns.example":          "https://dns.example:443/dns-query",
		"quic://dns.example:8853":      "quic://dns.example:8853",
		"https://dns.example:8443/q?x": "https://dns.example:8443/q?x",
		"h3://dns.example/dns-query":   "h3://dns.example:443/dns-query",
	} {
		if got := canonicalUpstream(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

type wireStub struct{ served int }

func (w *wireStub) ServeDNS(context.Context, *resolver.Query) (*dns.Msg, error) {
	return new(dns.Msg), nil
}
func (w *wireStub) ServeWire(_ *resolver.Query, _, dst []byte) ([]byte, bool) {
	w.served++
	return dst, w.served%2 == 1 // every other query falls back to ServeDNS
}

// TestLayerCounting: the wrapper keeps the fast path and counts each query
// once, whichever path answers it.
func TestLayerCounting(t *testing.T) {
	l := newLayerStats()
	h := l.handler(&wireStub{})
	wh, ok := h.(resolver.WireHandler)
	if !ok {
		t.Fatal("the fast path was lost")
	}
	tlsq := &resolver.Query{Listener: "dot", Transport: resolver.TLS, TLS: &resolver.TLSInfo{Version: 0x0304, CipherSuite: 0x1301, ECHAccepted: true}}
	for range 4 {
		if _, ok := wh.ServeWire(tlsq, nil, nil); !ok {
			h.ServeDNS(context.Background(), tlsq)
		}
	}
	h.ServeDNS(context.Background(), &resolver.Query{Listener: "udp", Transport: resolver.UDP})
	cl := l.clientLayers(map[string]string{"dot": "tls://127.0.0.1:853", "udp": "udp://127.0.0.1:53", "idle": "tcp://127.0.0.1:53"})
	if len(cl) != 3 || cl[0].Listener != "dot" || cl[0].Queries != 4 || len(cl[0].Sessions) != 1 ||
		cl[0].Sessions[0] != (clientCount{Transport: "tls", TLSVersion: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", ECHAccepted: true, Queries: 4}) ||
		cl[1].Listener != "idle" || cl[1].Queries != 0 || cl[2].Queries != 1 {
		t.Errorf("client layers: %+v", cl)
	}
}

// TestProxySniff: a proxied connection is classified once, by its client's
// first byte (a TLS handshake record or not); failed dials are counted apart.
func TestProxySniff(t *testing.T) {
	l := newLayerStats()
	fail := false
	d := l.dialer("p", dialFunc(func() (net.Conn, error) {
		if fail {
			return nil, errors.New("refused")
		}
		return nopConn{}, nil
	}))
	for _, first := range [][]byte{{0x16, 3, 1}, []byte("GET / HTTP/1.1\r\n"), {0x16}} {
		c, err := d.DialContext(context.Background(), "tcp", "x:443")
		if err != nil {
			t.Fatal(err)
		}
		c.Write(nil)
		c.Write(first)
		c.Write([]byte("later bytes do not count"))
	}
	fail = true
	if _, err := d.DialContext(context.Background(), "tcp", "x:443"); err == nil {
		t.Fatal("dial error lost")
	}
	c := l.proxy("p")
	if c.dials.Load() != 3 || c.failed.Load() != 1 || c.tls.Load() != 2 || c.plain.Load() != 1 {
		t.Errorf("dials %d failed %d tls %d plain %d", c.dials.Load(), c.failed.Load(), c.tls.Load(), c.plain.Load())
	}
}

type dialFunc func() (net.Conn, error)

func (f dialFunc) DialContext(context.Context, string, string) (net.Conn, error) { return f() }

type nopConn struct{ net.Conn }

func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
