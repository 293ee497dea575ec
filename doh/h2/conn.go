package h2

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/laminadns/lamina/resolver"
)

// What this server grants and accepts (RFC 9113 §6.5.2, §6.9.2).
const (
	recvStreamWindow = 1 << 17 // more than a request body may be, so an oversized one is seen whole enough to refuse
	recvConnWindow   = 1 << 20
	maxHeaderList    = 16 << 10
	maxBody          = 65535
	prefaceTimeout   = 10 * time.Second
)

// conn is one HTTP/2 connection. The read loop (serve and the frame
// handlers) owns the fields above mu; mu guards the stream table, the send
// side and the output buffer, which workers also use.
type conn struct {
	s   *Server
	nc  netConn
	br  *bufio.Reader
	fr  *http2.Framer
	tpl resolver.Query // connection facts every query shares

	// read loop only
	iq          resolver.Query // the inline query, reused
	qbuf, abuf  []byte
	recvUnacked uint32
	resets      int
	resetStart  time.Time
	readDL      time.Time
	lastStream  time.Time

	kick   chan struct{} // wakes the writer goroutine (Server.writerGoroutine)
	lastID atomic.Uint32 // highest client stream ID seen
	ctx    context.Context
	wg     sync.WaitGroup // workers

	mu        sync.Mutex
	streams   map[uint32]*stream
	workers   int
	goingAway bool
	closed    bool
	out       []byte // frames not yet written
	cuts      []int  // offsets in out where a response ends (a TLS record boundary)
	spare     []byte
	wfr       *http2.Framer // writes into out
	henc      *hpack.Encoder
	hbuf      outBuf
	sendConn  int64 // our connection send window
	peerInit  int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame  int
	blocked   []*stream // streams with response data waiting for window

	wmu sync.Mutex // orders writes to nc
	wDL time.Time
}

// netConn is what a connection needs of its *tls.Conn; fuzz tests use a
// plain pipe.
type netConn interface {
	net.Conn
	ConnectionState() tls.ConnectionState
}

// stream is a request that could not be answered the moment its headers
// arrived: it has a body to come, waits for a worker, or has response data
// waiting for flow-control window.
type stream struct {
	id        uint32
	method    string
	path      string
	authority string
	ctype     string
	fields    []hpack.HeaderField
	body      []byte
	bodyLen   int
	ended     bool // the request is complete
	sendWin   int64
	pending   []byte // response DATA not yet sent
	cancel    context.CancelFunc
}

// outBuf appends to a byte slice; Framer and hpack.Encoder write into it.
type outBuf struct{ b *[]byte }

func (o outBuf) Write(p []byte) (int, error) { *o.b = append(*o.b, p...); return len(p), nil }

func newConn(s *Server, nc netConn) *conn {
	c := &conn{s: s, nc: nc, streams: map[uint32]*stream{}, sendConn: 65535, peerInit: 65535, maxFrame: 16384}
	c.tpl = connQuery(s, nc)
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderList
	c.fr.SetReuseFrames()
	c.wfr = http2.NewFramer(outBuf{&c.out}, nil)
	var hb []byte
	c.hbuf = outBuf{&hb}
	c.henc = hpack.NewEncoder(c.hbuf)
	return c
}

// serve runs the read loop.
func (c *conn) serve(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.ctx = ctx
	stop := context.AfterFunc(parent, func() { c.nc.Close() })
	defer stop()
	if c.s.writerGoroutine {
		c.kick = make(chan struct{}, 1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-c.kick:
					c.flush()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	code, graceful := c.run()
	c.mu.Lock()
	if !c.closed {
		if code != http2.ErrCodeNo || graceful {
			c.wfr.WriteGoAway(c.lastID.Load(), code, nil)
		}
		c.mu.Unlock()
		c.flush()
		c.mu.Lock()
	}
	c.closed = true
	c.mu.Unlock()
	cancel()
	c.wg.Wait()
	if code != http2.ErrCodeNo {
		c.linger()
	}
	c.nc.Close()
}

// linger reads and drops what a misbehaving client still sends, for a
// moment, before the connection closes: closing with unread data makes the
// kernel send a TCP reset, and the client could lose the GOAWAY that says
// why.
func (c *conn) linger() {
	c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c.br, 1<<20))
}

// run reads frames until the connection ends; it returns the GOAWAY code to
// send and whether a GOAWAY is due even for ErrCodeNo (idle, shutdown).
func (c *conn) run() (http2.ErrCode, bool) {
	c.nc.SetReadDeadline(time.Now().Add(min(prefaceTimeout, c.s.cfg.IdleTimeout)))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.mu.Lock()
		c.closed = true // not HTTP/2: no GOAWAY
		c.mu.Unlock()
		return http2.ErrCodeProtocol, false
	}
	c.mu.Lock()
	c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: uint32(c.s.cfg.MaxConcurrentStreams)},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: recvStreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderList},
	)
	c.wfr.WriteWindowUpdate(0, recvConnWindow-65535)
	c.mu.Unlock()
	c.lastStream = time.Now()
	first := true
	for {
		if !c.frameBuffered() {
			c.flush()
			if c.idle() {
				return http2.ErrCodeNo, true
			}
			c.armDeadline()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				if se.StreamID > c.lastID.Load() && se.StreamID%2 == 1 {
					c.lastID.Store(se.StreamID)
				}
				c.resetStream(se.StreamID, se.Code)
				continue
			case errors.As(err, &ce):
				return http2.ErrCode(ce), true
			case errors.Is(err, http2.ErrFrameTooLarge):
				return http2.ErrCodeFrameSize, true
			}
			return http2.ErrCodeNo, isTimeout(err)
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return http2.ErrCodeProtocol, true
			}
			first = false
		}
		if code := c.handle(f); code != http2.ErrCodeNo {
			return code, true
		}
	}
}

// idle reports a connection going away (server shutdown or client GOAWAY)
// with nothing left to answer.
func (c *conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goingAway && len(c.streams) == 0 && c.workers == 0
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// frameBuffered reports whether a whole frame is already read, so that
// flushing can wait for the end of the batch.
func (c *conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := c.br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// armDeadline makes the next read fail IdleTimeout after the last stream
// started; it moves the deadline at most once a second.
func (c *conn) armDeadline() {
	want := c.lastStream.Add(c.s.cfg.IdleTimeout)
	if d := want.Sub(c.readDL); d > time.Second || d < 0 {
		c.readDL = want
		c.nc.SetReadDeadline(want)
	}
}

// shutdown starts a graceful close: GOAWAY with the last stream seen, no
// new streams; the loop ends once the open ones are answered.
func (c *conn) shutdown() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.wfr.WriteGoAway(c.lastID.Load(), http2.ErrCodeNo, nil)
	idle := len(c.streams) == 0 && c.workers == 0
	c.mu.Unlock()
	c.flush()
	if idle {
		c.nc.SetReadDeadline(time.Now()) // wake the loop, which sees idle()
	}
}
