package h2

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The send side. Every function ending in Locked runs with c.mu held and
// only encodes frames into c.out; flush writes them.

const mimeDNSMessage = "application/dns-message"

// lengths holds Content-Length values of DNS-sized bodies, so the fast
// path does not allocate them.
var lengths = func() (a [2048]string) {
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()

func contentLength(n int) string {
	if n < len(lengths) {
		return lengths[n]
	}
	return strconv.Itoa(n)
}

func (c *conn) field(name, value string) {
	c.henc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// headersLocked sends the header block encoded into c.hbuf as HEADERS plus
// CONTINUATION frames no larger than the client's SETTINGS_MAX_FRAME_SIZE.
func (c *conn) headersLocked(id uint32, endStream bool) {
	block := *c.hbuf.b
	first := true
	for first || len(block) > 0 {
		chunk := block[:min(len(block), c.maxFrame)]
		block = block[len(chunk):]
		if first {
			c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk,
				EndHeaders: len(block) == 0, EndStream: endStream})
			first = false
		} else {
			c.wfr.WriteContinuation(id, len(block) == 0, chunk)
		}
	}
	*c.hbuf.b = (*c.hbuf.b)[:0]
}

// writeDNSLocked sends a DoH answer. s is the stream's table entry, or nil
// for a request answered as its headers arrived.
func (c *conn) writeDNSLocked(s *stream, id uint32, wire []byte) {
	c.field(":status", "200")
	c.field("content-type", mimeDNSMessage)
	c.field("content-length", contentLength(len(wire)))
	c.field("cache-control", CacheControl(wire))
	if c.s.cfg.AltSvc != nil {
		if v := c.s.cfg.AltSvc(); v != "" {
			c.field("alt-svc", v)
		}
	}
	c.headersLocked(id, false)
	c.dataLocked(s, id, wire, false)
}

// status sends a plain-text error response, as http.Error would.
func (c *conn) status(s *stream, id uint32, code int, msg string) {
	c.mu.Lock()
	c.statusLocked(s, id, code, msg)
	c.mu.Unlock()
}

func (c *conn) statusLocked(s *stream, id uint32, code int, msg string) {
	body := msg + "\n"
	c.field(":status", strconv.Itoa(code))
	c.field("content-type", "text/plain; charset=utf-8")
	c.field("x-content-type-options", "nosniff")
	c.field("cache-control", "no-store")
	if code == http.StatusMethodNotAllowed {
		c.field("allow", "GET, POST")
	}
	c.field("content-length", contentLength(len(body)))
	c.headersLocked(id, false)
	c.dataLocked(s, id, []byte(body), true)
}

// writeHTTPLocked sends a response a Fallback handler produced.
func (c *conn) writeHTTPLocked(s *stream, w *memWriter, head bool) {
	c.field(":status", strconv.Itoa(w.status))
	for k, vs := range w.header {
		k = strings.ToLower(k)
		switch k {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length":
			continue // connection-specific (RFC 9113 §8.2.2) or ours
		}
		for _, v := range vs {
			c.field(k, v)
		}
	}
	body := w.body.Bytes()
	c.field("content-length", contentLength(len(body)))
	if head || len(body) == 0 {
		c.headersLocked(s.id, true)
		c.cuts = append(c.cuts, len(c.out))
		c.endLocked(s.id)
		return
	}
	c.headersLocked(s.id, false)
	c.dataLocked(s, s.id, body, true)
}

// dataLocked sends body as DATA frames ending the stream, as far as the
// client's flow-control windows allow (RFC 9113 §6.9); the rest waits in
// the stream's pending data for WINDOW_UPDATE. owned says body may be kept.
func (c *conn) dataLocked(s *stream, id uint32, body []byte, owned bool) {
	win := c.peerInit
	if s != nil {
		win = s.sendWin
	}
	for len(body) > 0 {
		n := int64(min(len(body), c.maxFrame))
		n = min(n, c.sendConn, win)
		if n <= 0 {
			if s == nil {
				s = &stream{id: id, ended: true}
				c.streams[id] = s
			}
			s.sendWin = win
			if !owned {
				body = append([]byte(nil), body...)
			}
			s.pending = body
			c.blocked = append(c.blocked, s)
			return
		}
		c.sendConn -= n
		win -= n
		c.wfr.WriteData(id, int(n) == len(body), body[:n])
		body = body[n:]
	}
	if s != nil {
		s.sendWin = win
		s.pending = nil
	}
	c.cuts = append(c.cuts, len(c.out)) // the answer ends its own TLS record
	c.endLocked(id)
}

// drainLocked sends pending response data that window now allows.
func (c *conn) drainLocked() {
	if len(c.blocked) == 0 {
		return
	}
	blocked := c.blocked
	c.blocked = nil
	for _, s := range blocked {
		if c.streams[s.id] != s {
			continue // reset meanwhile
		}
		c.dataLocked(s, s.id, s.pending, true)
	}
}

func (c *conn) unblockLocked(s *stream) {
	for i, b := range c.blocked {
		if b == s {
			c.blocked = append(c.blocked[:i], c.blocked[i+1:]...)
			return
		}
	}
}

// endLocked forgets a stream whose response is complete.
func (c *conn) endLocked(id uint32) {
	delete(c.streams, id)
	c.wakeLocked()
}

// wakeLocked interrupts the read loop of a connection that is going away
// once nothing is left to answer.
func (c *conn) wakeLocked() {
	if c.goingAway && len(c.streams) == 0 && c.workers == 0 {
		c.nc.SetReadDeadline(time.Now())
	}
}

// flush writes the encoded frames, each answer in TLS records of its own.
// Writers take turns on wmu in the order they took their buffers, so frames
// reach the wire in the order they were encoded.
func (c *conn) flush() {
	c.mu.Lock()
	if len(c.out) == 0 || c.closed {
		c.mu.Unlock()
		return
	}
	out, cuts := c.out, c.cuts
	c.out, c.cuts, c.spare = c.spare[:0], nil, nil
	c.wmu.Lock()
	c.mu.Unlock()
	// A client that does not read gets IdleTimeout to drain what we wrote;
	// the deadline moves only when half of it has passed.
	if now, d := time.Now(), c.s.cfg.IdleTimeout; c.wDL.Sub(now) < d/2 {
		c.wDL = now.Add(d)
		c.nc.SetWriteDeadline(c.wDL)
	}
	var err error
	start := 0
	for _, cut := range cuts {
		if cut > start {
			if _, err = c.nc.Write(out[start:cut]); err != nil {
				break
			}
			start = cut
		}
	}
	if err == nil && start < len(out) {
		_, err = c.nc.Write(out[start:])
	}
	c.wmu.Unlock()
	c.mu.Lock()
	if err != nil {
		c.closed = true
		c.nc.Close() // the read loop fails and winds down
	}
	if c.spare == nil {
		c.spare = out[:0]
	}
	c.mu.Unlock()
}
