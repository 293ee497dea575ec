package h2

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// rawClient speaks HTTP/2 frame by frame, to break the rules on purpose.
type rawClient struct {
	t    *testing.T
	c    *tls.Conn
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

func (e *env) raw(t *testing.T, settings ...http2.Setting) *rawClient {
	t.Helper()
	c, err := tls.Dial("tcp", e.ln.Addr().String(), tlsconftest.ClientConfig(t, e.p, []string{"h2"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.henc = hpack.NewEncoder(&r.hbuf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return r
}

// headers sends a request's header block, split into CONTINUATION frames
// when it is larger than 16 KB.
func (r *rawClient) headers(id uint32, end bool, kv ...string) {
	r.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		r.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	block := r.hbuf.Bytes()
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), 16384)]
		block = block[len(chunk):]
		var err error
		if first {
			err = r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndHeaders: len(block) == 0, EndStream: end})
			first = false
		} else {
			err = r.fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return // the server hung up; the reads that follow tell why
		}
	}
}

func (r *rawClient) get(id uint32, name string) {
	r.headers(id, true, ":method", "GET", ":scheme", "https", ":authority", "x", ":path",
		strings.TrimPrefix(getURL("/dns-query", query(name, dns.TypeA)), ""))
}

// next reads frames until one satisfies want; the server's SETTINGS are
// acknowledged on the way. It fails after 10 s or when the connection ends.
func (r *rawClient) next(want func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("reading: %v", err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			r.fr.WriteSettingsAck()
		}
		if testing.Verbose() {
			r.t.Logf("frame %v", f)
		}
		if want(f) {
			return f
		}
	}
}

// status waits for the response HEADERS of stream id.
func (r *rawClient) status(id uint32) string {
	r.t.Helper()
	f := r.next(func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == id
	})
	return f.(*http2.MetaHeadersFrame).PseudoValue("status")
}

// closed waits for the server to end the connection and returns the GOAWAY
// it sent, if any.
func (r *rawClient) closed() *http2.GoAwayFrame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ga *http2.GoAwayFrame
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatal("the server did not close the connection")
			}
			if ga == nil {
				r.t.Logf("connection ended without GOAWAY: %v", err)
			}
			return ga
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			ga = &http2.GoAwayFrame{LastStreamID: g.LastStreamID, ErrCode: g.ErrCode}
		}
	}
}

// stillServes checks that a fresh client is answered.
func (e *env) stillServes(t *testing.T) {
	t.Helper()
	r := e.raw(t)
	r.get(1, "h1.bench.test.")
	if s := r.status(1); s != "200" {
		t.Fatalf("another client got %s", s)
	}
}

func TestGarbagePreface(t *testing.T) {
	e := start(t, Config{})
	c, err := tls.Dial("tcp", e.ln.Addr().String(), tlsconftest.ClientConfig(t, e.p, []string{"h2"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nxxxxxxxxxxxxxxxxxxxxxxxx")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Fatalf("server wrote %d bytes, err %v; want a silent close", n, err)
	}
	// A valid preface followed by a frame other than SETTINGS.
	r := e.raw(t)
	r.c.Write([]byte{0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}) // PING... but SETTINGS was sent first by raw
	r.get(1, "h1.bench.test.")
	if s := r.status(1); s != "200" {
		t.Fatalf("status %s", s)
	}
	e.stillServes(t)
}

// TestHugeHeaders: a header list somewhat over MAX_HEADER_LIST_SIZE gets
// 431 and the connection goes on; one far over it, in CONTINUATION frames
// (the CONTINUATION flood), ends the connection with GOAWAY.
func TestHugeHeaders(t *testing.T) {
	e := start(t, Config{})
	r := e.raw(t)
	big := []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/dns-query"}
	for i := range 20 {
		big = append(big, "x-big-"+strconv.Itoa(i), strings.Repeat("a", 1000))
	}
	r.headers(1, true, big...)
	if s := r.status(1); s != "431" {
		t.Fatalf("status %s, want 431", s)
	}
	r.get(3, "h1.bench.test.")
	if s := r.status(3); s != "200" {
		t.Fatalf("after the big request: %s", s)
	}
	r.headers(5, true, ":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/dns-query",
		"x-huge", strings.Repeat("a", 100000))
	if ga := r.closed(); ga == nil || ga.ErrCode == http2.ErrCodeNo {
		t.Fatalf("GOAWAY %+v", ga)
	}
	e.stillServes(t)
}

// TestRapidReset: a client that opens and resets streams in a loop
// (CVE-2023-44487) is sent GOAWAY ENHANCE_YOUR_CALM and disconnected; others
// are served.
func TestRapidReset(t *testing.T) {
	h := newCache()
	h.delay = time.Second
	e := start(t, Config{Handler: h, MaxResetsPerSecond: 50})
	r := e.raw(t)
	go func() {
		for id := uint32(1); id < 2000; id += 2 {
			r.get(id, "slow.bench.test.")
			if r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	ga := r.closed()
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %+v, want ENHANCE_YOUR_CALM", ga)
	}
	e.stillServes(t)
}

// TestStreamFlood: streams beyond MAX_CONCURRENT_STREAMS are refused, and
// a client that keeps opening them anyway is disconnected.
func TestStreamFlood(t *testing.T) {
	h := newCache()
	h.delay = 2 * time.Second
	e := start(t, Config{Handler: h, MaxConcurrentStreams: 4, MaxResetsPerSecond: 20})
	r := e.raw(t)
	for id := uint32(1); id <= 9; id += 2 {
		r.get(id, "slow.bench.test.")
	}
	f := r.next(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
	if f.StreamID != 9 || f.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("RST_STREAM %d %v, want 9 REFUSED_STREAM", f.StreamID, f.ErrCode)
	}
	go func() {
		for id := uint32(11); id < 400; id += 2 {
			r.get(id, "slow.bench.test.")
		}
	}()
	if ga := r.closed(); ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %+v", ga)
	}
	e.stillServes(t)
}

// TestWindowExhaustion: a client that grants no flow-control window gets
// response HEADERS but no DATA, its streams stay open (and count against the
// limit), and nothing blocks: its PINGs are answered, other clients are
// served, and a WINDOW_UPDATE releases exactly the data it allows.
func TestWindowExhaustion(t *testing.T) {
	e := start(t, Config{MaxConcurrentStreams: 3})
	r := e.raw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	for id := uint32(1); id <= 7; id += 2 {
		r.get(id, "h1.bench.test.")
	}
	seen, refused := map[uint32]bool{}, false
	r.next(func(f http2.Frame) bool {
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			seen[f.StreamID] = true
		case *http2.DataFrame:
			t.Fatalf("DATA on stream %d without window", f.StreamID)
		case *http2.RSTStreamFrame:
			if f.StreamID != 7 || f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v", f.StreamID, f.ErrCode)
			}
			refused = true
		}
		return refused && len(seen) == 3
	})
	r.fr.WritePing(false, [8]byte{1})
	r.next(func(f http2.Frame) bool {
		if _, ok := f.(*http2.DataFrame); ok {
			t.Fatal("DATA without window")
		}
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck()
	})
	e.stillServes(t)
	r.fr.WriteWindowUpdate(3, 10)
	f := r.next(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if f.StreamID != 3 || len(f.Data()) != 10 || f.StreamEnded() {
		t.Fatalf("DATA stream %d, %d bytes, end %v; want stream 3, 10 bytes", f.StreamID, len(f.Data()), f.StreamEnded())
	}
	r.fr.WriteWindowUpdate(3, 1000)
	f = r.next(func(f http2.Frame) bool { _, ok := f.(*http2.DataFrame); return ok }).(*http2.DataFrame)
	if f.StreamID != 3 || !f.StreamEnded() {
		t.Fatalf("rest of stream 3: %d, end %v", f.StreamID, f.StreamEnded())
	}
}

// TestIdleTimeout: an idle connection gets GOAWAY and is closed.
func TestIdleTimeout(t *testing.T) {
	e := start(t, Config{IdleTimeout: 300 * time.Millisecond})
	r := e.raw(t)
	r.get(1, "h1.bench.test.")
	if s := r.status(1); s != "200" {
		t.Fatal(s)
	}
	if ga := r.closed(); ga == nil || ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1 {
		t.Fatalf("GOAWAY %+v", ga)
	}
}

// TestShutdown: Shutdown sends GOAWAY, the slow query in flight is still
// answered, then the connection closes and Shutdown returns.
func TestShutdown(t *testing.T) {
	h := newCache()
	h.delay = 300 * time.Millisecond
	e := start(t, Config{Handler: h})
	r := e.raw(t)
	r.get(1, "slow.bench.test.")
	r.next(func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	// Shut down only once the server is inside the slow query, so that the
	// stream is one it has taken on (a loaded machine may not have read it yet).
	for deadline := time.Now().Add(5 * time.Second); h.dnsN.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slow query never reached the handler")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- e.s.Shutdown(t.Context()) }()
	ga := r.next(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
	if ga.LastStreamID != 1 {
		t.Errorf("GOAWAY last stream %d", ga.LastStreamID)
	}
	if s := r.status(1); s != "200" {
		t.Fatalf("in-flight query: %s", s)
	}
	r.closed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
