package doh

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// rawH2 is a raw HTTP/2 client connection for abuse tests.
type rawH2 struct {
	c  *tls.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, e *env) *rawH2 {
	t.Helper()
	cfg := tlsconftest.ClientConfig(t, e.p, []string{"h2"}, nil)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(e.port), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &rawH2{c, fr}
}

// headers opens stream id with a POST; the error is the write's (a server
// may close a flooding connection).
func (h *rawH2) headers(id uint32, endStream bool) error {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "dns.example.test"},
		{":path", "/dns-query"}, {"content-type", mimeDNSMessage}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(),
		EndHeaders: true, EndStream: endStream})
}

// TestH2Floods: opening far more streams than allowed, and the rapid-reset
// pattern (HEADERS then RST_STREAM, repeated), are refused without harming
// other clients.
func TestH2Floods(t *testing.T) {
	e := start(t, false, Config{MaxConcurrentStreams: 10})

	// 200 streams left open (no body): the excess is refused, or the
	// connection is closed (GOAWAY or reset), which refuses them all.
	h := dialH2(t, e)
	closed := false
	for i := range 200 {
		if h.headers(uint32(2*i+1), false) != nil {
			closed = true
			break
		}
	}
	refused := 0
	for i := 0; i < 1000 && !closed && refused < 190; i++ {
		f, err := h.fr.ReadFrame()
		if err != nil {
			closed = true
			break
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			if f.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		case *http2.GoAwayFrame:
			closed = true
		}
	}
	if !closed && refused < 190 {
		t.Errorf("only %d of 190 excess streams refused", refused)
	}

	// Rapid reset: 500 streams opened and cancelled at once.
	r := dialH2(t, e)
	for i := range 500 {
		id := uint32(2*i + 1)
		if r.headers(id, false) != nil || r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server may close the connection: fine
		}
	}

	c := e.h2Client(t, nil)
	if m, _ := post(t, c, e.url, query(tlsconftest.SiteName, dns.TypeA)); len(m.Answer) != 1 {
		t.Fatal("server stopped answering after the floods")
	}
}

// get sends a GET for the site's A record on stream id.
func (h *rawH2) get(t *testing.T, id uint32) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	q := pack(t, query(tlsconftest.SiteName, dns.TypeA))
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "dns.example.test"},
		{":path", "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q)}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(),
		EndHeaders: true, EndStream: true}); err != nil {
		t.Fatal(err)
	}
}

// TestH2StreamLimit: a client that keeps exactly MaxConcurrentStreams
// requests in flight, opening the next as soon as one ends, is never refused
// (the stream must stop counting before END_STREAM goes out).
func TestH2StreamLimit(t *testing.T) {
	e := start(t, false, Config{MaxConcurrentStreams: 10})
	h := dialH2(t, e)
	next := uint32(1)
	for range 10 {
		h.get(t, next)
		next += 2
	}
	done := 0
	for done < 300 {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", done, err)
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			t.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.DataFrame:
			if f.StreamEnded() {
				done++
				h.get(t, next)
				next += 2
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				h.fr.WriteSettingsAck()
			}
		}
	}
}

// TestH2FlowControl: with a 10-byte stream window the answer comes in
// window-sized DATA frames as the client grants more, and is complete.
func TestH2FlowControl(t *testing.T) {
	e := start(t, false, Config{})
	h := dialH2(t, e)
	if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10}); err != nil {
		t.Fatal(err)
	}
	h.get(t, 1)
	var body []byte
	frames := 0
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := f.(*http2.DataFrame); ok {
			frames++
			if len(f.Data()) > 10 {
				t.Fatalf("DATA of %d bytes beyond a 10-byte window", len(f.Data()))
			}
			body = append(body, f.Data()...)
			if f.StreamEnded() {
				break
			}
			h.fr.WriteWindowUpdate(1, 10)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			t.Fatal("unexpected PING ack")
		}
	}
	m := new(dns.Msg)
	if err := m.Unpack(body); err != nil || len(m.Answer) != 1 || frames < 3 {
		t.Fatalf("%d frames, answer %v, %v", frames, m, err)
	}
	// PING is answered.
	h.fr.WritePing(false, [8]byte{1, 2, 3})
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == [8]byte{1, 2, 3} {
			break
		}
	}
}
