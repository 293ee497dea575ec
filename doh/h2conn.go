package doh

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2conn serves one HTTP/2 connection (RFC 9113) for DoH without the
// goroutine and channel hand-offs of a general server: one reader loop
// decodes frames, each complete request runs the Server's handler on its own
// goroutine with a buffered ResponseWriter, and the handler's goroutine
// writes HEADERS and DATA in one write, so every response is one TLS record
// (dnsperf and similar clients read one answer per record). DNS responses
// are small, so buffering them whole costs nothing; streaming responses,
// server push and priorities are not supported.
type h2conn struct {
	s    *Server
	c    *tls.Conn
	cs   tls.ConnectionState
	base context.Context
	rfr  *http2.Framer // reader goroutine only
	wg   sync.WaitGroup

	mu          sync.Mutex // guards streams, active, lastID, goingAway
	streams     map[uint32]*h2stream
	active      int // requests whose handler has not finished
	lastID      uint32
	goingAway   bool
	maxStreams  int
	idleTimeout time.Duration

	wmu        sync.Mutex // guards everything below and writes to c
	wcond      *sync.Cond // flow-control window grew, or the conn closed
	wbuf       bytes.Buffer
	wfr        *http2.Framer // writes into wbuf
	henc       *hpack.Encoder
	hbuf       bytes.Buffer
	connWindow int64 // our send window (RFC 9113 §6.9)
	initWindow int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame   int
	wclosed    bool
}

type h2stream struct {
	id       uint32
	fields   []hpack.HeaderField
	body     []byte
	tooBig   bool
	window   int64 // send window; guarded by wmu
	reset    bool  // guarded by wmu
	cancel   context.CancelFunc
	dispatch bool // handler started; reader only
}

const (
	h2RecvWindow   = 1 << 20 // what we grant per connection
	h2StreamWindow = 65535   // per stream: a DNS message at most
	h2MaxHeaders   = 64 << 10
)

func newH2Conn(s *Server, c *tls.Conn, base context.Context) *h2conn {
	hc := &h2conn{s: s, c: c, cs: c.ConnectionState(), base: base, streams: map[uint32]*h2stream{},
		maxStreams: s.cfg.MaxConcurrentStreams, idleTimeout: s.cfg.IdleTimeout,
		connWindow: 65535, initWindow: 65535, maxFrame: 16384}
	hc.wcond = sync.NewCond(&hc.wmu)
	hc.rfr = http2.NewFramer(nil, c)
	hc.rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	hc.rfr.MaxHeaderListSize = h2MaxHeaders
	hc.wfr = http2.NewFramer(&hc.wbuf, nil)
	hc.henc = hpack.NewEncoder(&hc.hbuf)
	return hc
}

// serve runs the connection until the client leaves, breaks the protocol,
// idles out, or the server shuts down; in-flight requests are answered
// before the connection closes.
func (hc *h2conn) serve() {
	ctx, cancel := context.WithCancel(hc.base)
	defer func() {
		hc.mu.Lock()
		graceful := hc.goingAway
		hc.mu.Unlock()
		if !graceful {
			cancel() // the client is gone or broke the protocol: stop work
		}
		hc.wg.Wait()
		cancel()
		hc.wmu.Lock()
		hc.wclosed = true
		hc.wcond.Broadcast()
		hc.wmu.Unlock()
		hc.c.Close()
	}()
	hc.c.SetReadDeadline(time.Now().Add(hc.s.cfg.HeaderTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(hc.c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	hc.write(func(f *http2.Framer) {
		f.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(hc.maxStreams)},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaders},
		)
		f.WriteWindowUpdate(0, h2RecvWindow-65535)
	})
	for {
		hc.mu.Lock()
		idle := hc.active == 0
		hc.mu.Unlock()
		if idle {
			hc.c.SetReadDeadline(time.Now().Add(hc.idleTimeout))
		} else {
			hc.c.SetReadDeadline(time.Time{})
		}
		f, err := hc.rfr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				hc.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				hc.goAway(http2.ErrCode(ce))
			}
			return
		}
		if code, ok := hc.handleFrame(ctx, f); !ok {
			hc.goAway(code)
			return
		}
	}
}

// handleFrame processes one frame; ok=false is a connection error.
func (hc *h2conn) handleFrame(ctx context.Context, f http2.Frame) (http2.ErrCode, bool) {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return hc.onHeaders(ctx, f)
	case *http2.DataFrame:
		return hc.onData(ctx, f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return 0, true
		}
		err := f.ForeachSetting(func(st http2.Setting) error {
			if err := st.Valid(); err != nil {
				return err
			}
			hc.wmu.Lock()
			defer hc.wmu.Unlock()
			switch st.ID {
			case http2.SettingInitialWindowSize:
				delta := int64(st.Val) - hc.initWindow
				hc.initWindow = int64(st.Val)
				hc.mu.Lock()
				for _, s := range hc.streams {
					s.window += delta
				}
				hc.mu.Unlock()
				hc.wcond.Broadcast()
			case http2.SettingMaxFrameSize:
				hc.maxFrame = int(st.Val)
			case http2.SettingHeaderTableSize:
				hc.henc.SetMaxDynamicTableSize(st.Val)
			}
			return nil
		})
		if err != nil {
			return http2.ErrCodeProtocol, false
		}
		hc.write(func(f *http2.Framer) { f.WriteSettingsAck() })
	case *http2.WindowUpdateFrame:
		hc.wmu.Lock()
		if f.StreamID == 0 {
			hc.connWindow += int64(f.Increment)
			if hc.connWindow > 1<<31-1 {
				hc.wmu.Unlock()
				return http2.ErrCodeFlowControl, false
			}
		} else {
			hc.mu.Lock()
			if s := hc.streams[f.StreamID]; s != nil {
				s.window += int64(f.Increment)
			}
			hc.mu.Unlock()
		}
		hc.wcond.Broadcast()
		hc.wmu.Unlock()
	case *http2.PingFrame:
		if !f.IsAck() {
			hc.write(func(w *http2.Framer) { w.WritePing(true, f.Data) })
		}
	case *http2.RSTStreamFrame:
		hc.mu.Lock()
		s := hc.streams[f.StreamID]
		if s != nil && !s.dispatch {
			delete(hc.streams, f.StreamID)
		}
		hc.mu.Unlock()
		if s != nil {
			hc.wmu.Lock()
			s.reset = true
			hc.wcond.Broadcast()
			hc.wmu.Unlock()
			if s.cancel != nil {
				s.cancel()
			}
		}
	case *http2.GoAwayFrame:
		return 0, false
	}
	return 0, true
}

func (hc *h2conn) onHeaders(ctx context.Context, f *http2.MetaHeadersFrame) (http2.ErrCode, bool) {
	id := f.StreamID
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if s := hc.streams[id]; s != nil && !s.dispatch && f.StreamEnded() {
		hc.startLocked(ctx, s) // trailers end a POST body
		return 0, true
	}
	if id%2 == 0 || id <= hc.lastID {
		return http2.ErrCodeProtocol, false
	}
	hc.lastID = id
	if hc.goingAway {
		return 0, true
	}
	if f.Truncated { // beyond MaxHeaderListSize
		hc.mu.Unlock()
		hc.resetStream(id, http2.ErrCodeProtocol)
		hc.mu.Lock()
		return 0, true
	}
	if len(hc.streams) >= hc.maxStreams {
		hc.mu.Unlock()
		hc.resetStream(id, http2.ErrCodeRefusedStream)
		hc.mu.Lock()
		return 0, true
	}
	// initWindow is written only by this (the reader) goroutine.
	s := &h2stream{id: id, fields: f.Fields, window: hc.initWindow}
	hc.streams[id] = s
	if f.StreamEnded() {
		hc.startLocked(ctx, s)
	}
	return 0, true
}

func (hc *h2conn) onData(ctx context.Context, f *http2.DataFrame) (http2.ErrCode, bool) {
	n := uint32(len(f.Data()))
	hc.mu.Lock()
	s := hc.streams[f.StreamID]
	if s == nil || s.dispatch {
		hc.mu.Unlock()
		// Flow control still counts the bytes (RFC 9113 §6.9).
		if n > 0 {
			hc.write(func(w *http2.Framer) { w.WriteWindowUpdate(0, n) })
		}
		hc.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		return 0, true
	}
	if len(s.body)+len(f.Data()) > maxBody {
		s.tooBig = true
	} else {
		s.body = append(s.body, f.Data()...)
	}
	if f.StreamEnded() {
		hc.startLocked(ctx, s)
	}
	hc.mu.Unlock()
	if n > 0 {
		hc.write(func(w *http2.Framer) {
			w.WriteWindowUpdate(0, n)
			if !f.StreamEnded() {
				w.WriteWindowUpdate(f.StreamID, n)
			}
		})
	}
	return 0, true
}

const maxBody = 65535

// startLocked runs the request's handler; hc.mu is held.
func (hc *h2conn) startLocked(ctx context.Context, s *h2stream) {
	s.dispatch = true
	hc.active++
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	hc.wg.Add(1)
	go func() {
		defer hc.wg.Done()
		defer cancel()
		hc.respond(rctx, s)
		hc.mu.Lock()
		delete(hc.streams, s.id)
		hc.active--
		hc.mu.Unlock()
	}()
}

// respond runs the handler for s and writes its buffered response.
func (hc *h2conn) respond(ctx context.Context, s *h2stream) {
	w := &bufferedWriter{header: http.Header{}}
	r, err := hc.request(ctx, s)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
	} else {
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					hc.s.panicked(p)
					w.reset(http.StatusInternalServerError)
				}
			}()
			hc.s.ServeHTTP(w, r)
		}()
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	hc.writeResponse(s, w)
}

// request builds the http.Request the Server's handlers expect.
func (hc *h2conn) request(ctx context.Context, s *h2stream) (*http.Request, error) {
	r := &http.Request{Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{},
		RemoteAddr: hc.c.RemoteAddr().String(), TLS: &hc.cs}
	for _, f := range s.fields {
		switch f.Name {
		case ":method":
			r.Method = f.Value
		case ":path":
			r.RequestURI = f.Value
		case ":authority":
			r.Host = f.Value
		case ":scheme", ":protocol":
		default:
			r.Header.Add(f.Name, f.Value)
		}
	}
	if r.Method == "" || r.RequestURI == "" {
		return nil, errors.New("missing pseudo-header")
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return nil, err
	}
	r.URL = u
	r.ContentLength = int64(len(s.body))
	if s.tooBig {
		r.ContentLength = maxBody + 1
	}
	r.Body = io.NopCloser(bytes.NewReader(s.body))
	return r.WithContext(ctx), nil
}

// writeResponse sends HEADERS and DATA in one write, waiting for flow-control
// window when the peer has not granted enough.
func (hc *h2conn) writeResponse(s *h2stream, w *bufferedWriter) {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	if hc.wclosed || s.reset {
		return
	}
	body := w.body.Bytes()
	hc.hbuf.Reset()
	hc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(w.status)})
	for k, vs := range w.header {
		k = strings.ToLower(k)
		if k == "connection" || k == "transfer-encoding" || k == "keep-alive" || k == "content-length" {
			continue
		}
		for _, v := range vs {
			hc.henc.WriteField(hpack.HeaderField{Name: k, Value: v})
		}
	}
	hc.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
	block := hc.hbuf.Bytes()
	hc.wbuf.Reset()
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), hc.maxFrame)]
		block = block[len(chunk):]
		if first {
			hc.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: chunk,
				EndHeaders: len(block) == 0, EndStream: len(body) == 0})
			first = false
		} else {
			hc.wfr.WriteContinuation(s.id, len(block) == 0, chunk)
		}
	}
	for len(body) > 0 {
		n := int64(min(len(body), hc.maxFrame))
		n = min(n, hc.connWindow, s.window)
		if n <= 0 {
			// Send what is encoded, then wait for WINDOW_UPDATE.
			if !hc.flushLocked() {
				return
			}
			hc.wcond.Wait()
			if hc.wclosed || s.reset {
				return
			}
			continue
		}
		hc.connWindow -= n
		s.window -= n
		hc.wfr.WriteData(s.id, int(n) == len(body), body[:n])
		body = body[n:]
	}
	// The stream stops counting against the limit before the client can
	// see END_STREAM and open the next one (RFC 9113 §5.1.2).
	hc.mu.Lock()
	delete(hc.streams, s.id)
	hc.mu.Unlock()
	hc.flushLocked()
}

// flushLocked writes wbuf to the connection; hc.wmu is held.
func (hc *h2conn) flushLocked() bool {
	if hc.wbuf.Len() == 0 {
		return !hc.wclosed
	}
	hc.c.SetWriteDeadline(time.Now().Add(hc.idleTimeout))
	_, err := hc.c.Write(hc.wbuf.Bytes())
	hc.wbuf.Reset()
	if err != nil {
		hc.wclosed = true
		hc.c.Close() // the reader fails and the connection winds down
		hc.wcond.Broadcast()
		return false
	}
	return true
}

// write encodes control frames with fn and sends them.
func (hc *h2conn) write(fn func(*http2.Framer)) {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	if hc.wclosed {
		return
	}
	hc.wbuf.Reset()
	fn(hc.wfr)
	hc.flushLocked()
}

func (hc *h2conn) resetStream(id uint32, code http2.ErrCode) {
	hc.write(func(f *http2.Framer) { f.WriteRSTStream(id, code) })
}

func (hc *h2conn) goAway(code http2.ErrCode) {
	hc.mu.Lock()
	last := hc.lastID
	hc.goingAway = true
	hc.mu.Unlock()
	hc.write(func(f *http2.Framer) { f.WriteGoAway(last, code, nil) })
}

// shutdown stops the connection gracefully: GOAWAY, no new streams, and the
// reader stops so that serve answers what it has and closes.
func (hc *h2conn) shutdown() {
	hc.goAway(http2.ErrCodeNo)
	hc.c.SetReadDeadline(time.Now())
}

// bufferedWriter is the http.ResponseWriter of h2conn: the whole response is
// kept until the handler returns.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }

func (w *bufferedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *bufferedWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *bufferedWriter) reset(code int) {
	w.header = http.Header{}
	w.status = code
	w.body.Reset()
}
