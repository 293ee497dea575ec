package doq

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// TestIdleTimeout: an idle connection is closed by the server.
func TestIdleTimeout(t *testing.T) {
	e := start(t, false, Config{IdleTimeout: 300 * time.Millisecond})
	c := e.mustDial(t, nil)
	ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
	select {
	case <-c.Context().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("idle connection still open")
	}
}

// Test0RTT: with the switch on, a resumed client's first query travels in
// 0-RTT data and is answered; with it off (the default) 0-RTT is refused and
// the query is answered after the handshake.
func Test0RTT(t *testing.T) {
	for _, allow := range []bool{true, false} {
		e := start(t, false, Config{Allow0RTT: allow})
		cfg := tlsconftest.ClientConfig(t, e.p, []string{"doq"}, nil)
		cache := &notifyCache{ClientSessionCache: tls.NewLRUClientSessionCache(8), put: make(chan struct{}, 8)}
		cfg.ClientSessionCache = cache
		dial := func() *quic.Conn {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := quic.DialAddrEarly(ctx, e.addr, cfg, &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.CloseWithError(0, "") })
			return c
		}
		c := dial()
		ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
		select { // the session ticket arrives after the handshake
		case <-cache.put:
		case <-time.After(10 * time.Second):
			t.Fatal("no session ticket")
		}
		c.CloseWithError(0, "")
		c2 := dial()
		if r := ask(t, c2, query(tlsconftest.SiteName, dns.TypeA)); len(r.Answer) != 1 {
			t.Fatalf("allow=%v: no answer", allow)
		}
		<-c2.HandshakeComplete()
		if used := c2.ConnectionState().Used0RTT; used != allow {
			t.Errorf("Allow0RTT=%v: Used0RTT=%v", allow, used)
		}
	}
}

// notifyCache signals each session stored, so the test can wait for the
// ticket instead of sleeping.
type notifyCache struct {
	tls.ClientSessionCache
	put chan struct{}
}

func (c *notifyCache) Put(key string, cs *tls.ClientSessionState) {
	c.ClientSessionCache.Put(key, cs)
	if cs != nil {
		select {
		case c.put <- struct{}{}:
		default:
		}
	}
}
