package doh

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"

	"golang.org/x/net/http2"
)

// HTTP/2 frame header fields that decide where a TLS record ends (RFC 9113
// §4.1, §6.1, §6.2).
const (
	frameHeaderLen  = 9
	frameData       = 0x0
	frameHeaders    = 0x1
	flagEndStream   = 0x1
	maxRecordFrames = 64 << 10 // flush a long run of frames without END_STREAM anyway
)

// recordConn ends a TLS record after every frame that completes a response
// (END_STREAM), so each DoH answer travels in records of its own.
//
// Go's HTTP/2 server writes all responses that are ready at once, and they
// share TLS records. dnsperf's DoH client (and any client built the same
// way) takes the DATA of everything one SSL_read returns as one DNS message,
// so it loses every answer after the first in a record and, waiting for
// them, stalls. Unbound writes each answer with its own SSL_write, which is
// also what this does. It parses only frame headers, carried across Write
// calls, and never buffers: a record boundary is one extra Write.
type recordConn struct {
	*tls.Conn
	out    io.Writer // the TLS connection; a recorder in tests
	hdr    [frameHeaderLen]byte
	hdrN   int  // header bytes of the current frame seen so far
	left   int  // payload bytes of the current frame still to come
	split  bool // the current frame ends a response
	unsent int  // bytes written since the last forced boundary
}

func (c *recordConn) Write(p []byte) (int, error) {
	start, i := 0, 0
	cut := func() error {
		if i > start {
			if _, err := c.out.Write(p[start:i]); err != nil {
				return err
			}
		}
		start = i
		c.unsent = 0
		return nil
	}
	for i < len(p) {
		if c.hdrN < frameHeaderLen {
			n := copy(c.hdr[c.hdrN:], p[i:])
			c.hdrN += n
			i += n
			if c.hdrN < frameHeaderLen {
				break
			}
			c.left = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			typ, flags := c.hdr[3], c.hdr[4]
			c.split = (typ == frameData || typ == frameHeaders) && flags&flagEndStream != 0
		} else {
			n := min(c.left, len(p)-i)
			i += n
			c.left -= n
		}
		if c.left == 0 && c.hdrN == frameHeaderLen {
			c.hdrN = 0
			if c.split || c.unsent+i-start >= maxRecordFrames {
				if err := cut(); err != nil {
					return start, err
				}
			}
		}
	}
	c.unsent += i - start
	if err := cut(); err != nil {
		return start, err
	}
	return len(p), nil
}

// serveH2 returns the TLSNextProto handler for "h2": x/net/http2's server
// over a recordConn. net/http still serves HTTP/1.1, tracks the connection
// for Close, and hands Shutdown to the HTTP/2 server (ConfigureServer
// registered it).
func serveH2(h2 *http2.Server) func(*http.Server, *tls.Conn, http.Handler) {
	return func(hs *http.Server, c *tls.Conn, h http.Handler) {
		var ctx context.Context
		// net/http passes its per-connection base context (with
		// LocalAddrContextKey) through this method of h.
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		h2.ServeConn(&recordConn{Conn: c, out: c}, &http2.ServeConnOpts{Context: ctx, Handler: h, BaseConfig: hs})
	}
}
