package h2

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

func doReq(t *testing.T, c *http.Client, method, url, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func answerOf(t *testing.T, resp *http.Response, body []byte) *dns.Msg {
	t.Helper()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != mimeDNSMessage {
		t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGetPost: GET and POST over Go's HTTP/2 client, first through the
// Handler (worker), then from the WireHandler fast path (inline), with
// Cache-Control from the smallest TTL and the TLS facts in the Query.
func TestGetPost(t *testing.T) {
	e := start(t, Config{})
	c := e.client(t)
	for i, tc := range []struct {
		method string
		name   string
		cc     string
		rcode  int
	}{
		{"GET", "h1.bench.test.", "max-age=300", dns.RcodeSuccess},
		{"POST", "h2.bench.test.", "max-age=300", dns.RcodeSuccess},
		{"GET", "nope.bench.test.", "max-age=60", dns.RcodeNameError},
	} {
		for round := range 2 {
			raw := query(tc.name, dns.TypeA)
			var resp *http.Response
			var body []byte
			if tc.method == "GET" {
				resp, body = doReq(t, c, "GET", getURL(e.url, raw), "", nil)
			} else {
				resp, body = doReq(t, c, "POST", e.url, mimeDNSMessage, raw)
			}
			m := answerOf(t, resp, body)
			if m.Rcode != tc.rcode || m.Question[0].Name != tc.name {
				t.Fatalf("%d: %v", i, m)
			}
			if got := resp.Header.Get("Cache-Control"); got != tc.cc {
				t.Errorf("%d: Cache-Control %q, want %q", i, got, tc.cc)
			}
			if resp.ProtoMajor != 2 {
				t.Errorf("proto %s", resp.Proto)
			}
			_ = round
		}
	}
	if w, d := e.h.wire.Load(), e.h.dnsN.Load(); w != 3 || d != 3 {
		t.Errorf("ServeWire answered %d, ServeDNS %d; want 3 and 3", w, d)
	}
	q := e.h.lastQ.Load()
	if q.Transport != resolver.HTTPS || q.TLS == nil || q.TLS.Version != tls.VersionTLS13 || q.TLS.ALPN != "h2" ||
		!q.Client.Addr().IsLoopback() || q.Local.Port() != uint16(e.port) {
		t.Errorf("query facts: %+v %+v", q, q.TLS)
	}
}

// TestManyStreams: many concurrent streams on one connection, mixing
// inline answers, slow ServeDNS answers and POSTs; every answer matches
// its question.
func TestManyStreams(t *testing.T) {
	h := newCache()
	h.delay = 20 * time.Millisecond
	e := start(t, Config{Handler: h, MaxConcurrentStreams: 50})
	c := e.client(t)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("h%d.bench.test.", i%37)
			if i%5 == 0 {
				name = fmt.Sprintf("slow%d.bench.test.", i)
			}
			raw := query(name, dns.TypeA)
			var resp *http.Response
			var err error
			if i%2 == 0 {
				resp, err = c.Get(getURL(e.url, raw))
			} else {
				resp, err = c.Post(e.url, mimeDNSMessage, bytes.NewReader(raw))
			}
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			m := new(dns.Msg)
			if err := m.Unpack(body); err != nil || resp.StatusCode != 200 || m.Question[0].Name != name {
				errs <- fmt.Errorf("%s: status %d %v %v", name, resp.StatusCode, err, m)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if e.h.wire.Load() == 0 {
		t.Error("no answer came from the fast path")
	}
}

// TestStatus: the HTTP answers to bad requests without a Fallback, as
// package doh gives them.
func TestStatus(t *testing.T) {
	e := start(t, Config{})
	c := e.client(t)
	raw := query("h1.bench.test.", dns.TypeA)
	for _, tc := range []struct {
		method, url, ctype string
		body               []byte
		status             int
	}{
		{"GET", e.url, "", nil, 400},
		{"GET", e.url + "?dns=!!!", "", nil, 400},
		{"GET", e.url + "?dns=AAAA", "", nil, 400}, // 3 bytes: not a query
		{"POST", e.url, "text/plain", raw, 415},
		{"POST", e.url, mimeDNSMessage, []byte{}, 400},
		{"POST", e.url, mimeDNSMessage, make([]byte, 70000), 413},
		{"PUT", e.url, mimeDNSMessage, raw, 405},
		{"GET", strings.TrimSuffix(e.url, "/dns-query") + "/other", "", nil, 404},
		{"POST", e.url, "application/dns-message; charset=x", raw, 200},
		{"GET", getURL(e.url, raw) + "==", "", nil, 200}, // padded base64 tolerated
	} {
		resp, body := doReq(t, c, tc.method, tc.url, tc.ctype, tc.body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %q: status %d, want %d: %s", tc.method, tc.url, tc.ctype, resp.StatusCode, tc.status, body)
		}
		if tc.status == 405 && resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("405 without Allow")
		}
		if tc.status != 200 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%d with Cache-Control %q", tc.status, resp.Header.Get("Cache-Control"))
		}
	}
}

// TestFallback: requests that are not DoH run the Fallback http.Handler,
// which sees what net/http would give it; its answer arrives intact.
func TestFallback(t *testing.T) {
	var seen *http.Request
	var body []byte
	fb := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/dns-json")
		w.Header().Set("X-Test", "yes")
		w.WriteHeader(203)
		fmt.Fprintf(w, `{"name":%q}`, r.URL.Query().Get("name"))
		w.Write(bytes.Repeat([]byte(" "), 40000)) // more than one DATA frame
	})
	e := start(t, Config{Fallback: fb, AltSvc: func() string { return `h3=":443"` }})
	c := e.client(t)
	resp, got := doReq(t, c, "GET", e.url+"?name=example.com&type=A", "", nil)
	if resp.StatusCode != 203 || resp.Header.Get("X-Test") != "yes" || !strings.HasPrefix(string(got), `{"name":"example.com"}`) || len(got) != 40000+22 {
		t.Fatalf("fallback response %d %v %q…", resp.StatusCode, resp.Header, got[:min(len(got), 40)])
	}
	if seen.Method != "GET" || seen.Host == "" || seen.TLS == nil || seen.RemoteAddr == "" || seen.Context().Value(http.LocalAddrContextKey) == nil {
		t.Errorf("request %+v", seen)
	}
	resp, _ = doReq(t, c, "POST", e.url, "text/plain", []byte("hello"))
	if resp.StatusCode != 203 || string(body) != "hello" || seen.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("POST fallback: %d %q", resp.StatusCode, body)
	}
	// DoH still answers on the fast path, with Alt-Svc.
	resp, b := doReq(t, c, "GET", getURL(e.url, query("h3.bench.test.", dns.TypeA)), "", nil)
	answerOf(t, resp, b)
	if resp.Header.Get("Alt-Svc") != `h3=":443"` {
		t.Errorf("Alt-Svc %q", resp.Header.Get("Alt-Svc"))
	}
	// HEAD: headers only.
	resp, b = doReq(t, c, "HEAD", e.url+"?name=x", "", nil)
	if resp.StatusCode != 203 || len(b) != 0 {
		t.Errorf("HEAD: %d, %d bytes", resp.StatusCode, len(b))
	}
}
