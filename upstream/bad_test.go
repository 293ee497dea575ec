package upstream

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDoHBadServer: each way a DoH server can answer wrongly is an error
// with a metric, never a crash or a wrong answer.
func TestDoHBadServer(t *testing.T) {
	pki := newPKI(t)
	answerWith := func(edit func(m *dns.Msg)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			req := new(dns.Msg)
			req.Unpack(body)
			m := answer(req, "192.0.2.1")
			edit(m)
			out, _ := m.Pack()
			w.Header().Set("Content-Type", "application/dns-message")
			w.Write(out)
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		drop    string // dropped_responses reason, "" for none
		result  string // exchanges result
	}{
		{"status 500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }, "bad_content", "error"},
		{"content type", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, "bad_content", "error"},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/dns-message")
			w.Write([]byte("\x00\x00garbage that is no DNS message"))
		}, "malformed", "error"},
		{"wrong ID", answerWith(func(m *dns.Msg) { m.Id = 77 }), "id", "error"},
		{"wrong question", answerWith(func(m *dns.Msg) { m.Question[0].Name = "evil.example." }), "question", "error"},
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/dns-message")
			w.Write(make([]byte, 70000))
		}, "oversized", "error"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "", "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t)
			url := srv.startDoH(t, pki.serverConfig("h2"), tt.handler)
			reg := prometheus.NewRegistry()
			opts := pki.clientOptions()
			opts.Metrics = NewMetrics(reg)
			opts.Timeout = 300 * time.Millisecond
			u, err := Parse(url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if resp, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err == nil {
				t.Fatalf("accepted %v", resp)
			}
			if tt.drop != "" {
				if n := counterValue(t, reg, "lamina_upstream_dropped_responses_total", map[string]string{"reason": tt.drop}); n < 1 {
					t.Errorf("dropped{reason=%s} = %v", tt.drop, n)
				}
			}
			if n := counterValue(t, reg, "lamina_upstream_exchanges_total", map[string]string{"result": tt.result}); n != 1 {
				t.Errorf("exchanges{result=%s} = %v, want 1", tt.result, n)
			}
		})
	}
}

// TestDoTBadServer: a TLS server that sends half a frame then closes, or
// garbage, fails the exchange cleanly.
func TestDoTBadServer(t *testing.T) {
	pki := newPKI(t)
	for _, tt := range []struct {
		name  string
		write []byte
	}{
		{"truncated frame", []byte{0, 200, 1, 2, 3}},
		{"garbage frame", []byte{0, 3, 1, 2, 3}},
		{"nothing", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tls.Listen("tcp", "127.0.0.1:0", pki.serverConfig("dot"))
			if err != nil {
				t.Fatal(err)
			}
			addr := streamServer(t, l, func(n int, c net.Conn) {
				if _, err := readFrame(c); err != nil {
					return
				}
				c.Write(tt.write)
			})
			opts := pki.clientOptions()
			opts.Timeout = 500 * time.Millisecond
			u, err := NewDoT(addr.String(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if _, err := u.Exchange(context.Background(), query("www.example.", dns.TypeA)); err == nil {
				t.Fatal("exchange succeeded")
			}
		})
	}
}
