package doq

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	p    *tlsconf.Provider
	h    *tlsconftest.Static
	s    *Server
	addr string
}

func start(t testing.TB, ech bool, cfg Config) *env {
	t.Helper()
	e := &env{p: tlsconftest.Provider(t, ech)}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = pc.LocalAddr().String()
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	e.h = &tlsconftest.Static{Self: func() []dns.RR {
		return e.p.SelfRecords(tlsconf.Service{Name: tlsconftest.ServiceName, DoQPort: port})
	}}
	if cfg.Handler == nil {
		cfg.Handler = e.h
	}
	cfg.TLSConfig = e.p.ServerConfig(tlsconf.DoQ)
	if e.s, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.s.Serve(pc) }()
	t.Cleanup(func() {
		e.s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return e
}

func (e *env) dial(t testing.TB, echList []byte) (*quic.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := quic.DialAddr(ctx, e.addr, tlsconftest.ClientConfig(t, e.p, []string{"doq"}, echList), &quic.Config{})
	if err == nil {
		t.Cleanup(func() { c.CloseWithError(0, "") })
	}
	return c, err
}

func (e *env) mustDial(t testing.TB, echList []byte) *quic.Conn {
	t.Helper()
	c, err := e.dial(t, echList)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange sends raw as one DoQ query on a new stream and returns the
// response bytes, or the error that ended the stream.
func exchange(c *quic.Conn, raw []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	st.SetDeadline(time.Now().Add(10 * time.Second))
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(raw)))
	if _, err := st.Write(append(frame, raw...)); err != nil {
		return nil, err
	}
	st.Close()
	b, err := io.ReadAll(st)
	if err != nil {
		return nil, err
	}
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil, errors.New("bad response framing")
	}
	return b[2:], nil
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0
	return m
}

func ask(t testing.TB, c *quic.Conn, m *dns.Msg) *dns.Msg {
	t.Helper()
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	b, err := exchange(c, raw)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return r
}

func appError(err error) (uint64, bool) {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return uint64(ae.ErrorCode), true
	}
	var se *quic.StreamError
	if errors.As(err, &se) {
		return uint64(se.ErrorCode), true
	}
	return 0, false
}

func TestQuery(t *testing.T) {
	e := start(t, false, Config{})
	c := e.mustDial(t, nil)
	for range 3 { // several streams on one connection
		r := ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
		if r.Id != 0 || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
			t.Fatalf("answer %v", r)
		}
	}
	// Padded query, padded answer (RFC 8467), and no keepalive offered
	// (RFC 9250 §5.5.2; a query carrying it is a protocol error, see
	// TestProtocolErrors).
	q := query(tlsconftest.SiteName, dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 30)})
	raw, _ := q.Pack()
	b, err := exchange(c, raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%468 != 0 {
		t.Errorf("padded answer is %d bytes", len(b))
	}
	if bytes.Contains(b, []byte{0, 11, 0, 2}) {
		t.Error("edns-tcp-keepalive sent over DoQ")
	}
	seen := e.h.Seen()
	if seen[0].Transport != resolver.QUIC {
		t.Errorf("transport %v", seen[0].Transport)
	}
}

// TestProtocolErrors: each violation closes its connection with
// DOQ_PROTOCOL_ERROR; other connections keep being served.
func TestProtocolErrors(t *testing.T) {
	e := start(t, false, Config{})
	good := query(tlsconftest.SiteName, dns.TypeA)
	nonzero := good.Copy()
	nonzero.Id = 77
	nz, _ := nonzero.Pack()
	resp := good.Copy()
	resp.Response = true
	rb, _ := resp.Pack()
	ka := good.Copy()
	ka.SetEdns0(1232, false)
	ka.IsEdns0().Option = append(ka.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	kb, _ := ka.Pack()
	// The same after another additional record: not what the fast scan
	// takes, so the decoder must find the option.
	ka.Extra = append([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{"x"}}}, ka.Extra...)
	kc, _ := ka.Pack()
	for name, raw := range map[string][]byte{
		"non-zero ID":        nz,
		"keepalive":          kb,
		"keepalive, decoded": kc,
		"garbage":            []byte{0, 0, 1, 2, 3},
		"response":           rb,
		"short message":      {0, 0},
	} {
		c := e.mustDial(t, nil)
		_, err := exchange(c, raw)
		if code, ok := appError(err); !ok || code != ProtocolError {
			t.Errorf("%s: %v, want DOQ_PROTOCOL_ERROR", name, err)
		}
	}
	// A stream that ends inside its message.
	c := e.mustDial(t, nil)
	st, err := c.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0, 40, 0, 0, 1})
	st.Close()
	_, err = io.ReadAll(st)
	if code, ok := appError(err); !ok || code != ProtocolError {
		t.Errorf("truncated stream: %v", err)
	}
	// Unidirectional streams are not allowed at all.
	c = e.mustDial(t, nil)
	if _, err := c.OpenUniStream(); err == nil {
		t.Error("unidirectional stream opened")
	}
	if r := ask(t, e.mustDial(t, nil), good); len(r.Answer) != 1 {
		t.Fatal("server stopped answering")
	}
}

// TestSlowAndIdle: a stream that never sends its query is reset after the
// read timeout; junk datagrams and half-open handshakes do not disturb others.
func TestSlowAndIdle(t *testing.T) {
	e := start(t, false, Config{ReadTimeout: 200 * time.Millisecond})
	c := e.mustDial(t, nil)
	st, err := c.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0}) // half a length prefix, then nothing
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(st)
	if code, ok := appError(err); !ok || code != RequestCancelled {
		t.Errorf("stalled stream: %v, want DOQ_REQUEST_CANCELLED", err)
	}
	// Junk datagrams, including one shaped like a QUIC long header.
	u, err := net.Dial("udp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, junk := range [][]byte{{1, 2, 3}, append([]byte{0xc0, 0, 0, 0, 1, 8}, make([]byte, 1200)...), make([]byte, 1300)} {
		u.Write(junk)
	}
	if r := ask(t, c, query(tlsconftest.SiteName, dns.TypeA)); len(r.Answer) != 1 {
		t.Fatal("no answer after junk")
	}
	if r := ask(t, e.mustDial(t, nil), query(tlsconftest.SiteName, dns.TypeA)); len(r.Answer) != 1 {
		t.Fatal("no answer on a new connection after junk")
	}
}

func TestMaxConns(t *testing.T) {
	e := start(t, false, Config{MaxConns: 1})
	c1 := e.mustDial(t, nil)
	ask(t, c1, query(tlsconftest.SiteName, dns.TypeA))
	c2, err := e.dial(t, nil)
	if err == nil {
		_, err = exchange(c2, mustPack(query(tlsconftest.SiteName, dns.TypeA)))
	}
	if code, ok := appError(err); !ok || code != ExcessiveLoad {
		t.Errorf("second connection: %v, want DOQ_EXCESSIVE_LOAD", err)
	}
	ask(t, c1, query(tlsconftest.SiteName, dns.TypeA))
}

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// TestECH: the ECHConfigList from Lamina's own SVCB answer gets ECH accepted
// over DoQ; a stale one gets retry configs that work; the previous key works
// during its grace period after rotation.
func TestECH(t *testing.T) {
	e := start(t, true, Config{})
	svcb := ask(t, e.mustDial(t, nil), query("_dns."+tlsconftest.ServiceName+".", dns.TypeSVCB))
	list := tlsconftest.ECHFromAnswer(svcb)
	if list == nil {
		t.Fatalf("no ech in %v", svcb)
	}
	c := e.mustDial(t, list)
	if !c.ConnectionState().TLS.ECHAccepted {
		t.Fatal("ECH not accepted")
	}
	ask(t, c, query(tlsconftest.SiteName, dns.TypeA))
	if s := e.h.Seen(); !s[len(s)-1].ECHAccepted {
		t.Error("query not marked ECHAccepted on the server")
	}

	stale, _ := tlsconf.GenerateECHKey(tlsconftest.PublicName, 99)
	_, err := e.dial(t, tlsconf.MarshalECHConfigList(stale.Config))
	var rej *tls.ECHRejectionError
	if !errors.As(err, &rej) || !bytes.Equal(rej.RetryConfigList, list) {
		t.Fatalf("stale config: %v", err)
	}
	if c := e.mustDial(t, rej.RetryConfigList); !c.ConnectionState().TLS.ECHAccepted {
		t.Error("retry not accepted")
	}

	if err := e.p.RotateECH(); err != nil {
		t.Fatal(err)
	}
	if c := e.mustDial(t, list); !c.ConnectionState().TLS.ECHAccepted {
		t.Error("old key refused during grace")
	}
}
