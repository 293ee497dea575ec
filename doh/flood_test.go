package doh

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// h2conn is a raw HTTP/2 client connection for abuse tests.
type h2conn struct {
	c  *tls.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, e *env) *h2conn {
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
	return &h2conn{c, fr}
}

func (h *h2conn) headers(t *testing.T, id uint32, endStream bool) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "dns.example.test"},
		{":path", "/dns-query"}, {"content-type", mimeDNSMessage}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(),
		EndHeaders: true, EndStream: endStream}); err != nil {
		t.Fatal(err)
	}
}

// TestH2Floods: opening far more streams than allowed, and the rapid-reset
// pattern (HEADERS then RST_STREAM, repeated), are refused without harming
// other clients.
func TestH2Floods(t *testing.T) {
	e := start(t, false, Config{MaxConcurrentStreams: 10})

	// 200 streams left open (no body): the excess is refused or the
	// connection is closed.
	h := dialH2(t, e)
	for i := range 200 {
		h.headers(t, uint32(2*i+1), false)
	}
	refused := 0
	for range 1000 {
		f, err := h.fr.ReadFrame()
		if err != nil {
			break // connection closed: also a refusal
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.ErrCode == http2.ErrCodeRefusedStream {
			refused++
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			refused = 190
			break
		}
		if refused >= 190 {
			break
		}
	}
	if refused < 190 {
		t.Errorf("only %d of 190 excess streams refused", refused)
	}

	// Rapid reset: 500 streams opened and cancelled at once.
	r := dialH2(t, e)
	for i := range 500 {
		id := uint32(2*i + 1)
		r.headers(t, id, false)
		if err := r.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			break // the server may close the connection: fine
		}
	}

	c := e.h2Client(t, nil)
	if m, _ := post(t, c, e.url, query(tlsconftest.SiteName, dns.TypeA)); len(m.Answer) != 1 {
		t.Fatal("server stopped answering after the floods")
	}
}
