package doq

import (
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// Slow queries on several connections never run more than MaxQueries at
// once; the others wait, and all are answered in the end.
func TestMaxQueriesShared(t *testing.T) {
	const maxQueries, conns, perConn = 5, 3, 4
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
		}
		m := new(dns.Msg)
		return m.SetReply(q.Msg), nil
	})
	e := start(t, false, Config{Handler: h, MaxQueries: maxQueries})
	errs := make(chan error, conns*perConn)
	for range conns {
		c := e.mustDial(t, nil)
		for range perConn {
			go func() {
				_, err := exchange(c, mustPack(query(tlsconftest.SiteName, dns.TypeA)))
				errs <- err
			}()
		}
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() < maxQueries && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	// Give the other streams the chance to exceed the bound, were it not
	// enforced.
	for range 50 {
		if running.Load() > maxQueries {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(release)
	for range conns * perConn {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != maxQueries {
		t.Fatalf("peak concurrency %d, want %d", p, maxQueries)
	}
}

// A client that opens streams for large answers and never reads them is
// closed with DOQ_EXCESSIVE_LOAD once they pass MaxQueued, and counted;
// other clients are still served.
func TestSlowReaderClosed(t *testing.T) {
	reg := prometheus.NewRegistry()
	txt := strings.Repeat("x", 255)
	h := resolver.HandlerFunc(func(_ context.Context, q *resolver.Query) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(q.Msg)
		for range 190 { // about 50 KiB
			m.Answer = append(m.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Msg.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{txt},
			})
		}
		return m, nil
	})
	e := start(t, false, Config{Handler: h, Metrics: do53.NewMetrics(reg), MaxQueued: 128 << 10})
	c := e.mustDial(t, nil)
	raw := mustPack(query(tlsconftest.SiteName, dns.TypeTXT))
	// 60 answers of 50 KiB are 3 MB, beyond the client's QUIC receive
	// windows: the server's writes block.
	for range 60 {
		st, err := c.OpenStreamSync(context.Background())
		if err != nil {
			break // closed already
		}
		st.Write(binary.BigEndian.AppendUint16(nil, uint16(len(raw))))
		st.Write(raw)
		st.Close()
	}
	select {
	case <-c.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("slow reader still connected after 10 s")
	}
	if code, ok := appError(context.Cause(c.Context())); !ok || code != ExcessiveLoad {
		t.Errorf("slow reader closed with %v, want DOQ_EXCESSIVE_LOAD", context.Cause(c.Context()))
	}
	if v := dropped(t, reg, "slow_reader"); v != 1 {
		t.Errorf("slow_reader drops = %v, want 1", v)
	}
	if r := ask(t, e.mustDial(t, nil), query(tlsconftest.SiteName, dns.TypeTXT)); len(r.Answer) != 190 {
		t.Fatalf("other client got %d records", len(r.Answer))
	}
}

// dropped reads lamina_dropped_queries_total{transport="quic",reason}.
func dropped(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "lamina_dropped_queries_total" {
			continue
		}
		for _, m := range mf.Metric {
			if labels(m)["transport"] == resolver.QUIC.String() && labels(m)["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.Label {
		l[p.GetName()] = p.GetValue()
	}
	return l
}
