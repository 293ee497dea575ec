package doh

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/doh/h2"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// FuzzDoHRequest drives whole requests (method, query string, content type,
// body) through the handler: any input gets one of the expected statuses,
// and a 200 always carries a DNS response.
func FuzzDoHRequest(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion(tlsconftest.SiteName, dns.TypeA)
	good, _ := q.Pack()
	f.Add("GET", "dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE", "", []byte(nil))
	f.Add("POST", "", mimeDNSMessage, good)
	f.Add("POST", "", "application/dns-message; charset=x", good[:5])
	f.Add("GET", "name=site.example.test&type=AAAA", "", []byte(nil))
	f.Add("GET", "dns=====", "", []byte(nil))
	f.Add("PUT", "dns=AAAA", "text/plain", []byte("x"))
	s, err := New(Config{Handler: &tlsconftest.Static{}})
	if err != nil {
		f.Fatal(err)
	}
	ok := map[int]bool{200: true, 400: true, 404: true, 405: true, 413: true, 414: true, 415: true}
	f.Fuzz(func(t *testing.T, method, rawQuery, ct string, body []byte) {
		if method == "" || len(method) > 10 || bytes.ContainsAny([]byte(method), " \t\r\n/") {
			method = "GET"
		}
		req := httptest.NewRequestWithContext(context.Background(), "POST", "https://dns.example.test/dns-query", bytes.NewReader(body))
		req.Method = method
		req.URL.RawQuery = rawQuery
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if !ok[w.Code] {
			t.Fatalf("status %d for %s ?%q", w.Code, method, rawQuery)
		}
		if w.Code == 200 && w.Header().Get("Content-Type") == mimeDNSMessage {
			m := new(dns.Msg)
			if err := m.Unpack(w.Body.Bytes()); err != nil || !m.Response {
				t.Fatalf("200 without a DNS response: %v", err)
			}
		}
		_ = http.StatusOK
	})
}

func FuzzMinTTL(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("a.example.", dns.TypeA)
	rr, _ := dns.NewRR("a.example. 30 IN A 192.0.2.1")
	m.Answer = append(m.Answer, rr)
	m.SetEdns0(1232, false)
	b, _ := m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		ttl, ok := h2.MinTTL(b)
		var m dns.Msg
		if m.Unpack(b) == nil && ok {
			for _, rr := range append(append(m.Answer, m.Ns...), m.Extra...) {
				if rr.Header().Rrtype != dns.TypeOPT && rr.Header().Ttl < ttl {
					t.Fatalf("minTTL %d above %v", ttl, rr)
				}
			}
		}
	})
}
