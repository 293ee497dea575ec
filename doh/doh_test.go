package doh

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestGetPost(t *testing.T) {
	e := start(t, false, Config{})
	c := e.h2Client(t, nil)
	site := query(tlsconftest.SiteName, dns.TypeA)
	for name, do := range map[string]func() (*dns.Msg, *http.Response){
		"GET":  func() (*dns.Msg, *http.Response) { return get(t, c, e.url, site) },
		"POST": func() (*dns.Msg, *http.Response) { return post(t, c, e.url, site) },
		"GET padded base64": func() (*dns.Msg, *http.Response) {
			r, err := c.Get(e.url + "?dns=" + base64.URLEncoding.EncodeToString(pack(t, site)))
			if err != nil {
				t.Fatal(err)
			}
			return decode(t, r), r
		},
	} {
		m, r := do()
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "127.0.0.1" || m.Id != 0 {
			t.Errorf("%s: answer %v", name, m)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "max-age=300" {
			t.Errorf("%s: Cache-Control %q", name, cc)
		}
		if r.ProtoMajor != 2 {
			t.Errorf("%s: HTTP/%d", name, r.ProtoMajor)
		}
		if !strings.HasPrefix(r.Header.Get("Alt-Svc"), `h3=":`) {
			t.Errorf("%s: Alt-Svc %q", name, r.Header.Get("Alt-Svc"))
		}
	}
	// NXDOMAIN caches for the SOA's TTL.
	if _, r := get(t, c, e.url, query("nope.example.test.", dns.TypeA)); r.Header.Get("Cache-Control") != "max-age=60" {
		t.Errorf("NXDOMAIN Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	// A non-zero ID is echoed; a padded query gets a padded answer (RFC 8467).
	q := query(tlsconftest.SiteName, dns.TypeA)
	q.Id = 4242
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 40)})
	r, err := c.Post(e.url, mimeDNSMessage, bytes.NewReader(pack(t, q)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil || m.Id != 4242 {
		t.Errorf("ID %d, %v", m.Id, err)
	}
	if len(body)%468 != 0 {
		t.Errorf("padded answer is %d bytes", len(body))
	}
	seen := e.h.Seen()
	if len(seen) == 0 || seen[0].Transport != resolver.HTTPS {
		t.Errorf("queries seen: %+v", seen)
	}
}

func TestH3(t *testing.T) {
	e := start(t, false, Config{})
	m, r := post(t, e.h3Client(t, nil), e.url, query(tlsconftest.SiteName, dns.TypeA))
	if r.ProtoMajor != 3 || len(m.Answer) != 1 {
		t.Fatalf("HTTP/%d, answer %v", r.ProtoMajor, m)
	}
	if r.Header.Get("Alt-Svc") != "" {
		t.Error("Alt-Svc sent over HTTP/3")
	}
	if s := e.h.Seen(); s[len(s)-1].Transport != resolver.HTTP3 {
		t.Errorf("transport %v", s[len(s)-1].Transport)
	}
}

func TestJSON(t *testing.T) {
	e := start(t, false, Config{})
	c := e.h2Client(t, nil)
	for _, tc := range []struct {
		path, accept  string
		status, rcode int
		ct            string
	}{
		{"?name=site.example.test&type=A", mimeDNSJSON, 200, 0, mimeDNSJSON},
		{"?name=site.example.test&type=1", "", 200, 0, mimeJSON},
		{"?name=nope.example.test", mimeDNSJSON, 200, 3, mimeDNSJSON},
		{"?name=site.example.test&type=BOGUS", "", 400, 0, ""},
		{"?name=", mimeDNSJSON, 400, 0, ""},
	} {
		for _, base := range []string{e.url, strings.Replace(e.url, "/dns-query", "/resolve", 1)} {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			r, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode != tc.status {
				t.Errorf("%s: status %d", tc.path, r.StatusCode)
				continue
			}
			if tc.status != 200 {
				continue
			}
			var out jsonResponse
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			if out.Status != tc.rcode || r.Header.Get("Content-Type") != tc.ct {
				t.Errorf("%s: %+v %q", tc.path, out, r.Header.Get("Content-Type"))
			}
			if tc.rcode == 0 && (len(out.Answer) != 1 || out.Answer[0].Data != "127.0.0.1" || out.Answer[0].TTL != 300) {
				t.Errorf("%s: answer %+v", tc.path, out.Answer)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	e := start(t, false, Config{})
	c := e.h2Client(t, nil)
	good := pack(t, query(tlsconftest.SiteName, dns.TypeA))
	twoQ := query(tlsconftest.SiteName, dns.TypeA)
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	for _, tc := range []struct {
		name, method, query, ct string
		body                    []byte
		status                  int
	}{
		{"bad base64", "GET", "?dns=%%%", "", nil, 400},
		{"bad base64 chars", "GET", "?dns=AAAA*AAA", "", nil, 400},
		{"no dns param", "GET", "", "", nil, 400},
		{"empty body", "POST", "", mimeDNSMessage, nil, 400},
		{"wrong content type", "POST", "", "text/plain", good, 415},
		{"no content type", "POST", "", "", good, 415},
		{"huge body", "POST", "", mimeDNSMessage, make([]byte, 70000), 413},
		{"PUT", "PUT", "", mimeDNSMessage, good, 405},
		{"DELETE", "DELETE", "?dns=AAAA", "", nil, 405},
		{"short garbage", "POST", "", mimeDNSMessage, []byte{1, 2, 3}, 400},
		{"response bit set", "POST", "", mimeDNSMessage, append(append([]byte{}, good[:2]...), append([]byte{0x80}, good[3:]...)...), 400},
		{"two questions", "POST", "", mimeDNSMessage, pack(t, twoQ), 200}, // FORMERR is a DNS answer
		{"undecodable", "POST", "", mimeDNSMessage, append(append([]byte{}, good[:12]...), 0xff, 0xff), 200},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.query, bytes.NewReader(tc.body))
		if tc.ct != "" {
			req.Header.Set("Content-Type", tc.ct)
		}
		r, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, r.StatusCode, tc.status, body)
		}
		if tc.status == 200 {
			m := new(dns.Msg)
			if err := m.Unpack(body); err != nil || m.Rcode != dns.RcodeFormatError {
				t.Errorf("%s: want FORMERR, got %v %v", tc.name, err, m)
			}
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", tc.name, r.Header.Get("Cache-Control"))
			}
		} else if r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: error response cacheable", tc.name)
		}
	}
	if m, _ := post(t, c, e.url, query(tlsconftest.SiteName, dns.TypeA)); len(m.Answer) != 1 {
		t.Fatal("server stopped answering after bad input")
	}
}

func TestAltSvcPort(t *testing.T) {
	s, err := New(Config{Handler: &tlsconftest.Static{}, AltSvcH3Port: 8443})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/dns-query?name=site.example.test", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if got := w.Header().Get("Alt-Svc"); got != `h3=":8443"; ma=86400` {
		t.Errorf("Alt-Svc %q", got)
	}
}

// TestSlowClients: a TCP connection that never starts TLS, and a TLS
// connection that never finishes its request headers, are closed; the server
// keeps answering.
func TestSlowClients(t *testing.T) {
	e := start(t, false, Config{HeaderTimeout: 300 * time.Millisecond})
	addr := "127.0.0.1:" + strconv.Itoa(e.port)
	closed := func(name string, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: connection still open", name)
		}
	}
	half, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	closed("no ClientHello", half)

	cfg := tlsconftest.ClientConfig(t, e.p, []string{"http/1.1"}, nil)
	slow, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("POST /dns-query HTTP/1.1\r\nHost: dns.example.test\r\n"))
	closed("slowloris", slow)

	// HTTP/1.1 still works.
	tr := &http.Transport{TLSClientConfig: tlsconftest.ClientConfig(t, e.p, nil, nil)}
	defer tr.CloseIdleConnections()
	m, r := post(t, &http.Client{Transport: tr}, e.url, query(tlsconftest.SiteName, dns.TypeA))
	if r.ProtoMajor != 1 || len(m.Answer) != 1 {
		t.Fatalf("HTTP/%d answer %v", r.ProtoMajor, m)
	}
}

// TestMaxConns: with MaxConns 2, a third connection is closed at once and
// counted; once one of the two closes, a new client is served again.
func TestMaxConns(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := do53.NewMetrics(reg)
	e := start(t, false, Config{MaxConns: 2, Metrics: m})
	addr := "127.0.0.1:" + strconv.Itoa(e.port)
	cfg := tlsconftest.ClientConfig(t, e.p, []string{"h2"}, nil)
	var held []*tls.Conn
	for range 2 {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	third, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		third.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = third.Read(make([]byte, 1))
		third.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third connection: %v, want it closed by the server", err)
	}
	if got := testDropped(t, reg, "https", "overload"); got != 1 {
		t.Errorf("overload drops = %v, want 1", got)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr := &http.Transport{TLSClientConfig: tlsconftest.ClientConfig(t, e.p, nil, nil)}
		resp, err := (&http.Client{Transport: tr, Timeout: 2 * time.Second}).Get(e.url + "?dns=" + base64.RawURLEncoding.EncodeToString(pack(t, query(tlsconftest.SiteName, dns.TypeA))))
		tr.CloseIdleConnections()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one of the two closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testDropped reads lamina_dropped_total for a transport and reason.
func testDropped(t *testing.T, g prometheus.Gatherer, transport, reason string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["transport"] == transport && labels["reason"] == reason && strings.Contains(mf.GetName(), "dropped") {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
