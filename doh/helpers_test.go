package doh

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/goleak"

	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a running DoH server with h1/h2 on TCP and h3 on UDP, same port.
type env struct {
	p    *tlsconf.Provider
	h    *tlsconftest.Static
	s    *Server
	port int
	url  string
}

var svc = tlsconf.Service{Name: tlsconftest.ServiceName, DoHPort: 0, H3: true}

func start(t testing.TB, ech bool, cfg Config) *env {
	t.Helper()
	e := &env{p: tlsconftest.Provider(t, ech)}
	var ln net.Listener
	var pc net.PacketConn
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", l.Addr().String()); err == nil {
			ln = l
			break
		}
		l.Close()
	}
	if ln == nil {
		t.Fatal("no port free for both TCP and UDP")
	}
	e.port = ln.Addr().(*net.TCPAddr).Port
	s := svc
	s.DoHPort = uint16(e.port)
	e.h = &tlsconftest.Static{Self: func() []dns.RR { return e.p.SelfRecords(s) }}
	cfg.Handler = e.h
	cfg.TLSConfig = e.p.ServerConfig(tlsconf.DoH)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.s = srv
	e.url = "https://127.0.0.1:" + strconv.Itoa(e.port) + srv.cfg.Path
	done := make(chan struct{}, 2)
	go func() { srv.Serve(ln); done <- struct{}{} }()
	go func() { srv.ServeH3(pc); done <- struct{}{} }()
	// Alt-Svc is advertised once ServeH3 runs; tests that check it must not
	// race its goroutine.
	for deadline := time.Now().Add(5 * time.Second); srv.altSvcValue() == "" && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() {
		srv.Close()
		pc.Close()
		<-done
		<-done
	})
	return e
}

// h2Client returns an HTTP/2-only client trusting the test CA.
func (e *env) h2Client(t testing.TB, echList []byte) *http.Client {
	tr := &http.Transport{TLSClientConfig: tlsconftest.ClientConfig(t, e.p, nil, echList)}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (e *env) h3Client(t testing.TB, echList []byte) *http.Client {
	tr := &http3.Transport{TLSClientConfig: tlsconftest.ClientConfig(t, e.p, nil, echList)}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0 // RFC 8484 §4.1: SHOULD be 0 for cache friendliness
	return m
}

// post sends m as an RFC 8484 POST and decodes the answer.
func post(t testing.TB, c *http.Client, url string, m *dns.Msg) (*dns.Msg, *http.Response) {
	t.Helper()
	resp, err := c.Post(url, mimeDNSMessage, bytes.NewReader(pack(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp), resp
}

func get(t testing.TB, c *http.Client, url string, m *dns.Msg) (*dns.Msg, *http.Response) {
	t.Helper()
	resp, err := c.Get(url + "?dns=" + base64.RawURLEncoding.EncodeToString(pack(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp), resp
}

func decode(t testing.TB, resp *http.Response) *dns.Msg {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != mimeDNSMessage {
		t.Fatalf("content type %q", ct)
	}
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil {
		t.Fatal(err)
	}
	return m
}

// echFromSelf asks the server for its own _dns SVCB record without ECH and
// returns the ECHConfigList it carries, as a DDR client would.
func (e *env) echFromSelf(t testing.TB) []byte {
	t.Helper()
	m, _ := post(t, e.h2Client(t, nil), e.url, query("_dns."+tlsconftest.ServiceName+".", dns.TypeSVCB))
	list := tlsconftest.ECHFromAnswer(m)
	if list == nil {
		t.Fatalf("no ech in the SVCB answer: %v", m)
	}
	return list
}

func isECHRejection(err error) (*tls.ECHRejectionError, bool) {
	var rej *tls.ECHRejectionError
	return rej, errors.As(err, &rej)
}
