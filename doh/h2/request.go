package h2

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
)

// tryInlineGET answers a GET whose headers ended the request, as they
// arrive: the cache-hit path. It returns false for anything but a
// well-formed DoH GET; a query the fast path declines goes to a worker.
func (c *conn) tryInlineGET(s *stream) bool {
	p, query, _ := strings.Cut(s.path, "?")
	if p != c.s.cfg.Path {
		return false
	}
	v, ok := dnsParam(query)
	if !ok {
		return false
	}
	raw, ok := decodeParam(c.qbuf, v)
	if !ok {
		return false
	}
	c.qbuf = raw[:0]
	if c.answerInline(nil, s.id, raw) {
		return true
	}
	c.mu.Lock()
	s.sendWin = c.peerInit
	c.streams[s.id] = s
	c.mu.Unlock()
	c.startQuery(s, bytes.Clone(raw))
	return true
}

// answerInline offers raw to the resolver's fast path on the read loop.
func (c *conn) answerInline(s *stream, id uint32, raw []byte) bool {
	c.iq = c.tpl
	resp, ok := c.s.resp.TryWire(&c.iq, raw, c.abuf[:0])
	if !ok {
		return false
	}
	c.abuf = resp[:0]
	c.mu.Lock()
	c.writeDNSLocked(s, id, resp)
	c.mu.Unlock()
	return true
}

// dispatch serves a complete request from the stream table.
func (c *conn) dispatch(s *stream) {
	if raw, ok := c.dohQuery(s); ok {
		if !c.answerInline(s, s.id, raw) {
			c.startQuery(s, bytes.Clone(raw))
		}
		return
	}
	if c.s.cfg.Fallback == nil {
		c.refuse(s)
		return
	}
	c.startFallback(s)
}

// dohQuery extracts the DNS message of a well-formed RFC 8484 request.
func (c *conn) dohQuery(s *stream) ([]byte, bool) {
	p, query, _ := strings.Cut(s.path, "?")
	if p != c.s.cfg.Path {
		return nil, false
	}
	switch s.method {
	case http.MethodGet:
		if v, ok := dnsParam(query); ok {
			return decodeParam(nil, v)
		}
	case http.MethodPost:
		if isDNSMessage(s.ctype) && len(s.body) > 0 {
			return s.body, true
		}
	}
	return nil, false
}

func isDNSMessage(ct string) bool {
	if ct == mimeDNSMessage {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == mimeDNSMessage
}

// refuse answers a request that is not DoH when there is no Fallback.
func (c *conn) refuse(s *stream) {
	p, _, _ := strings.Cut(s.path, "?")
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case p != c.s.cfg.Path:
		c.statusLocked(s, s.id, http.StatusNotFound, "not found")
	case s.method != http.MethodGet && s.method != http.MethodPost:
		c.statusLocked(s, s.id, http.StatusMethodNotAllowed, "method not allowed")
	case s.method == http.MethodPost && !isDNSMessage(s.ctype):
		c.statusLocked(s, s.id, http.StatusUnsupportedMediaType, "content type must be "+mimeDNSMessage)
	case s.method == http.MethodPost:
		c.statusLocked(s, s.id, http.StatusBadRequest, "empty body")
	default:
		c.statusLocked(s, s.id, http.StatusBadRequest, "missing or bad dns parameter")
	}
}

// startQuery answers raw on a goroutine of its own through do53.Responder;
// the stream limit bounds how many run per connection.
func (c *conn) startQuery(s *stream, raw []byte) {
	ctx := c.startWorker(s)
	go func() {
		defer c.wg.Done()
		q := c.tpl
		wire, err := c.s.resp.Respond(ctx, &q, raw, nil)
		c.finish(s, func() {
			if err != nil {
				// Not a query, or the policy dropped it: HTTP must say
				// something, and 400 tells the client not to retry as is.
				c.statusLocked(s, s.id, http.StatusBadRequest, "no answer")
				return
			}
			c.writeDNSLocked(s, s.id, wire)
		})
	}()
}

func (c *conn) startWorker(s *stream) context.Context {
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.workers++
	s.cancel = cancel
	c.mu.Unlock()
	c.wg.Add(1)
	return ctx
}

// finish writes a worker's response, unless the stream was reset or the
// connection closed meanwhile, and flushes it.
func (c *conn) finish(s *stream, write func()) {
	c.mu.Lock()
	c.workers--
	if s.cancel != nil {
		s.cancel()
	}
	if !c.closed && c.streams[s.id] == s {
		write()
	}
	c.wakeLocked()
	c.mu.Unlock()
	if c.kick != nil {
		select {
		case c.kick <- struct{}{}:
		default: // a flush is due anyway
		}
		return
	}
	c.flush()
}

// startFallback runs the Fallback handler for s on a goroutine.
func (c *conn) startFallback(s *stream) {
	ctx := c.startWorker(s)
	go func() {
		defer c.wg.Done()
		w := &memWriter{header: http.Header{}}
		if r, err := c.request(ctx, s); err != nil {
			w.WriteHeader(http.StatusBadRequest)
		} else {
			c.runFallback(w, r)
		}
		if w.status == 0 {
			w.status = http.StatusOK
		}
		c.finish(s, func() { c.writeHTTPLocked(s, w, s.method == http.MethodHead) })
	}()
}

func (c *conn) runFallback(w *memWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.s.cfg.Metrics.Panic()
				c.s.log.Error("fallback handler panic", "panic", p, "stack", string(debug.Stack()))
			}
			w.reset(http.StatusInternalServerError)
		}
	}()
	c.s.cfg.Fallback.ServeHTTP(w, r)
}

// request builds the http.Request a Fallback handler expects from net/http.
func (c *conn) request(ctx context.Context, s *stream) (*http.Request, error) {
	u, err := url.ParseRequestURI(s.path)
	if err != nil {
		return nil, err
	}
	cs := c.nc.ConnectionState()
	r := &http.Request{Method: s.method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{},
		Host: s.authority, RequestURI: s.path, RemoteAddr: c.nc.RemoteAddr().String(), TLS: &cs,
		ContentLength: int64(s.bodyLen), Body: io.NopCloser(bytes.NewReader(s.body))}
	for _, f := range s.fields {
		if !strings.HasPrefix(f.Name, ":") {
			r.Header.Add(f.Name, f.Value)
		}
	}
	if ctx.Value(http.LocalAddrContextKey) == nil {
		ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.nc.LocalAddr())
	}
	return r.WithContext(ctx), nil
}

// memWriter is the http.ResponseWriter of Fallback handlers: the response is
// kept whole until the handler returns (DNS and JSON answers are small).
type memWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *memWriter) reset(code int) {
	w.header = http.Header{}
	w.status = code
	w.body.Reset()
}
