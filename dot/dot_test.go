package dot

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	p    *tlsconf.Provider
	h    *tlsconftest.Static
	addr string
}

func start(t testing.TB, ech bool, cfg Config) *env {
	t.Helper()
	e := &env{p: tlsconftest.Provider(t, ech)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	e.h = &tlsconftest.Static{Self: func() []dns.RR {
		return e.p.SelfRecords(tlsconf.Service{Name: tlsconftest.ServiceName, DoTPort: port})
	}}
	cfg.Handler = e.h
	cfg.TLSConfig = e.p.ServerConfig(tlsconf.DoT)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, do53.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

func (e *env) dial(t testing.TB, alpn []string, echList []byte) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", e.addr, tlsconftest.ClientConfig(t, e.p, alpn, echList))
	if err == nil {
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return c, err
}

func (e *env) mustDial(t testing.TB, echList []byte) *tls.Conn {
	t.Helper()
	c, err := e.dial(t, []string{"dot"}, echList)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ask(t testing.TB, c net.Conn, m *dns.Msg) *dns.Msg {
	t.Helper()
	dc := &dns.Conn{Conn: c}
	if err := dc.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	r, err := dc.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func TestQuery(t *testing.T) {
	e := start(t, false, Config{})
	for _, alpn := range [][]string{{"dot"}, nil} { // ALPN offered, not required
		c, err := e.dial(t, alpn, nil)
		if err != nil {
			t.Fatalf("alpn %v: %v", alpn, err)
		}
		r := ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
		if len(r.Answer) != 1 {
			t.Fatalf("answer %v", r)
		}
	}
	if _, err := e.dial(t, []string{"h2"}, nil); err == nil {
		t.Error("a different ALPN was accepted")
	}
	// miekg/dns's DoT client, pipelining on one connection.
	c := &dns.Client{Net: "tcp-tls", TLSConfig: tlsconftest.ClientConfig(t, e.p, []string{"dot"}, nil), Timeout: 10 * time.Second}
	conn, err := c.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 5 {
		q := query(tlsconftest.SiteName, dns.TypeA)
		q.Id = uint16(100 + i)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[uint16]bool{}
	for range 5 {
		r, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		ids[r.Id] = true
	}
	if len(ids) != 5 {
		t.Errorf("answers for %d distinct IDs", len(ids))
	}
	if s := e.h.Seen(); s[0].Transport != resolver.TLS {
		t.Errorf("transport %v", s[0].Transport)
	}
}

// TestECH: ECHConfigList from Lamina's own SVCB answer → ECH accepted on DoT;
// stale config → retry configs → accepted; old key valid during grace.
func TestECH(t *testing.T) {
	e := start(t, true, Config{})
	svcb := ask(t, e.mustDial(t, nil), query("_dns."+tlsconftest.ServiceName+".", dns.TypeSVCB))
	list := tlsconftest.ECHFromAnswer(svcb)
	if list == nil {
		t.Fatalf("no ech in %v", svcb)
	}
	c := e.mustDial(t, list)
	if !c.ConnectionState().ECHAccepted {
		t.Fatal("ECH not accepted")
	}
	ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
	if s := e.h.Seen(); !s[len(s)-1].ECHAccepted {
		t.Error("query not marked ECHAccepted on the server")
	}
	stale, _ := tlsconf.GenerateECHKey(tlsconftest.PublicName, 99)
	_, err := e.dial(t, []string{"dot"}, tlsconf.MarshalECHConfigList(stale.Config))
	var rej *tls.ECHRejectionError
	if !errors.As(err, &rej) || !bytes.Equal(rej.RetryConfigList, list) {
		t.Fatalf("stale config: %v", err)
	}
	if c := e.mustDial(t, rej.RetryConfigList); !c.ConnectionState().ECHAccepted {
		t.Error("retry not accepted")
	}
	if err := e.p.RotateECH(); err != nil {
		t.Fatal(err)
	}
	if c := e.mustDial(t, list); !c.ConnectionState().ECHAccepted {
		t.Error("old key refused during grace")
	}
}

// TestBadInput: garbage instead of a ClientHello, a half-open handshake, and
// garbage inside the TLS session each lose their connection; the server goes
// on answering.
func TestBadInput(t *testing.T) {
	e := start(t, false, Config{HandshakeTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	closed := func(name string, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
			t.Errorf("%s: connection not closed by the server: %v", name, err)
		}
	}
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	closed("plaintext", raw)

	half, err := net.Dial("tcp", e.addr) // connects, never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	closed("half-open", half)

	c := e.mustDial(t, nil)
	c.Write([]byte{0, 5, 1, 2, 3, 4, 5}) // a frame too short to be a query
	closed("garbage frame", c)

	idle := e.mustDial(t, nil)
	closed("idle", idle)

	if r := ask(t, e.mustDial(t, nil), query(tlsconftest.SiteName, dns.TypeA)); len(r.Answer) != 1 {
		t.Fatal("server stopped answering")
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}
