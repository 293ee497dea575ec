package do53

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/resolver"
)

// conn is one client stream connection.
type conn struct {
	s  *StreamServer
	nc net.Conn
	br *bufio.Reader

	// q is the template of this connection's queries, fixed once the TLS
	// handshake is done; handlers copy it. wq is the reader's own copy for
	// the fast path, which sets fields on it.
	q, wq resolver.Query

	ctx    context.Context // cancelled when the connection breaks or is closed
	cancel context.CancelFunc
	out    chan *[]byte // framed responses for the writer
	// pending gathers the reader's fast-path answers to the frames already
	// buffered, so that a burst of pipelined queries is answered with one
	// write (and one TLS record) instead of one per answer.
	pending *[]byte
	sem     chan struct{} // slow-path queries in flight
	wdone   chan struct{} // closed when the writer has exited

	handlers   sync.WaitGroup
	inflight   atomic.Int32 // queries read and not yet answered
	queued     atomic.Int64 // bytes handed to the writer and not yet written
	slow       atomic.Bool  // closed for not reading its answers
	lastActive atomic.Int64 // unix nanoseconds of the last frame read or written
}

// readBufSize holds a few pipelined queries; larger frames are read apart.
const readBufSize = 4096

// writeBatch is how many bytes of ready responses one write gathers: about a
// TLS record, so that DoT sends few records and TCP few segments.
const writeBatch = 16 << 10

func (s *StreamServer) newConn(nc net.Conn) *conn {
	c := &conn{
		s:     s,
		nc:    nc,
		out:   make(chan *[]byte, s.cfg.MaxInFlight+1),
		sem:   make(chan struct{}, s.cfg.MaxInFlight),
		wdone: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.q = resolver.Query{
		Client:    unmap(addrPort(nc.RemoteAddr())),
		Local:     addrPort(nc.LocalAddr()),
		Transport: s.cfg.Transport,
		Listener:  s.cfg.Listener,
		MaxSize:   65535,
	}
	c.lastActive.Store(time.Now().UnixNano())
	return c
}

// idle reports whether c has no query in flight, making it the first to go
// when MaxConns is reached. A client stalled mid-frame or mid-handshake
// counts as idle.
func (c *conn) idle() bool { return c.inflight.Load() == 0 }

// close breaks the connection: reader and writer fail, handlers are cancelled.
func (c *conn) close() {
	c.cancel()
	c.nc.Close()
}

func (c *conn) serve() {
	defer c.s.untrack(c)
	defer c.close()
	cfg := &c.s.cfg
	if tc, ok := c.nc.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(c.ctx, cfg.HandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			cfg.Logger.Debug("tls handshake failed", "listener", cfg.Listener, "err", err)
			return
		}
		c.q.TLS = tlsInfo(tc.ConnectionState())
	}
	c.wq = c.q
	c.br = bufio.NewReaderSize(c.nc, readBufSize)
	go c.writeLoop()
	if !c.readLoop() {
		c.cancel() // broken or hostile: do not bother answering
	}
	c.handlers.Wait()
	close(c.out)
	<-c.wdone
}

// readLoop reads frames until the client leaves, stalls, idles out, sends
// garbage or the server shuts down. It reports whether the queries already
// read should still be answered.
func (c *conn) readLoop() (answer bool) {
	defer c.flush()
	cfg := &c.s.cfg
	for {
		if c.br.Buffered() == 0 {
			c.flush()
			c.nc.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
			if c.s.closing.Load() {
				return true
			}
			if _, err := c.br.Peek(1); err != nil {
				if isTimeout(err) && c.inflight.Load() > 0 && !c.s.closing.Load() {
					continue // not idle: answers are still being worked on
				}
				return c.s.closing.Load() || errors.Is(err, io.EOF) || isTimeout(err)
			}
		}
		// A frame has begun: all of it must arrive within ReadTimeout.
		deadline := false
		if c.br.Buffered() < 2 {
			c.flush()
			c.nc.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
			deadline = true
		}
		hdr, err := c.br.Peek(2)
		if err != nil {
			return c.s.closing.Load()
		}
		n := int(binary.BigEndian.Uint16(hdr))
		if n < headerLen {
			// A zero-length or header-less frame: the stream is not DNS.
			cfg.Metrics.Dropped(cfg.Transport, DropMalformed)
			return false
		}
		if c.br.Buffered() < 2+n {
			c.flush()
			if !deadline {
				c.nc.SetReadDeadline(time.Now().Add(cfg.ReadTimeout))
			}
		}
		if 2+n <= c.br.Size() {
			frame, err := c.br.Peek(2 + n)
			if err != nil {
				return c.s.closing.Load()
			}
			c.query(frame[2:])
			c.br.Discard(2 + n)
			continue
		}
		c.br.Discard(2)
		body := make([]byte, n)
		if _, err := io.ReadFull(c.br, body); err != nil {
			return c.s.closing.Load()
		}
		c.query(body)
	}
}

// flush hands the gathered fast-path answers to the writer.
func (c *conn) flush() {
	switch {
	case c.pending == nil:
		return
	case len(*c.pending) == 0:
		c.s.putBuf(c.pending)
	default:
		c.send(c.pending)
	}
	c.pending = nil
}

// wireAnswer tries the fast path, appending the framed answer to pending.
func (c *conn) wireAnswer(raw []byte, start time.Time) bool {
	if c.pending == nil {
		c.pending = c.s.getBuf()
	}
	b := *c.pending
	off := len(b)
	b = append(b, 0, 0)
	resp, ok := c.s.cfg.tryWire(c.s.wire, &c.wq, raw, b[len(b):], c.s.cfg.IdleTimeout, start)
	if !ok {
		*c.pending = b[:off]
		return false
	}
	*c.pending = appendFrame(b[:off], resp)
	if len(*c.pending) >= writeBatch {
		c.flush()
	}
	return true
}

// query answers one framed query; raw is only valid during the call.
func (c *conn) query(raw []byte) {
	cfg := &c.s.cfg
	start := time.Now()
	c.lastActive.Store(start.UnixNano())
	if raw[2]&0x80 != 0 {
		cfg.Metrics.Dropped(cfg.Transport, DropMalformed) // a response, not a query
		return
	}
	if c.s.wire != nil && c.wireAnswer(raw, start) {
		return
	}
	if !c.acquire() {
		return
	}
	bp := c.s.getBuf()
	*bp = append((*bp)[:0], raw...)
	c.inflight.Add(1)
	c.handlers.Add(1)
	c.s.work.Go(func() { c.handle(bp, start) })
}

// acquire takes a connection slot and a server slot for a slow-path query,
// first handing the gathered answers to the writer if it has to wait. It
// reports false when the connection is closing, or closes it when no server
// slot frees within IdleTimeout.
func (c *conn) acquire() bool {
	select {
	case c.sem <- struct{}{}:
	default:
		c.flush()
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			return false
		}
	}
	select {
	case c.s.slots <- struct{}{}:
		return true
	default:
	}
	c.flush()
	t := time.NewTimer(c.s.cfg.IdleTimeout)
	defer t.Stop()
	select {
	case c.s.slots <- struct{}{}:
		return true
	case <-c.ctx.Done():
	case <-t.C:
		c.s.cfg.Metrics.Dropped(c.s.cfg.Transport, DropOverload)
		c.close()
	}
	<-c.sem
	return false
}

// handle runs the slow path for the query in *bp and reuses *bp for the answer.
func (c *conn) handle(bp *[]byte, start time.Time) {
	defer func() {
		<-c.s.slots
		<-c.sem
		c.inflight.Add(-1)
		c.lastActive.Store(time.Now().UnixNano())
		c.handlers.Done()
	}()
	q := c.q // copy: each handler gets its own Query
	wire, err := c.s.cfg.answer(c.ctx, &q, *bp, (*bp)[:2][2:], c.s.cfg.IdleTimeout, start)
	if err != nil {
		c.s.putBuf(bp)
		return
	}
	*bp = appendFrame((*bp)[:0], wire)
	c.send(bp)
}

// appendFrame appends wire to b with its 2-byte length prefix. wire usually
// sits already where it belongs, in b's array just past the prefix (the
// fast path and Reply pack in place), and is then not copied.
func appendFrame(b, wire []byte) []byte {
	off := len(b)
	if cap(b)-off > 2 && &b[:off+3][off+2] == &wire[0] {
		b = b[:off+2+len(wire)]
	} else {
		b = append(b, 0, 0)
		b = append(b, wire...)
	}
	binary.BigEndian.PutUint16(b[off:], uint16(len(wire)))
	return b
}

// send queues f for the writer, or closes the connection if the client
// leaves more than MaxQueued bytes unread.
func (c *conn) send(f *[]byte) {
	n := int64(len(*f))
	if c.queued.Add(n) > int64(c.s.cfg.MaxQueued) {
		c.queued.Add(-n)
		c.s.putBuf(f)
		if c.slow.CompareAndSwap(false, true) {
			c.s.cfg.Metrics.Dropped(c.s.cfg.Transport, DropSlowReader)
			c.s.cfg.Logger.Debug("closing connection of a client not reading", "listener", c.s.cfg.Listener,
				"client", c.q.Client.String())
			c.close()
		}
		return
	}
	select {
	case c.out <- f:
	case <-c.ctx.Done():
		c.s.putBuf(f)
	}
}

// writeLoop writes responses as they become ready, gathering those already
// waiting into one write.
func (c *conn) writeLoop() {
	defer close(c.wdone)
	failed := false
	for f := range c.out {
		if failed {
			c.s.putBuf(f)
			continue
		}
		if len(c.out) > 0 {
			f = c.gather(f)
		}
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		_, err := c.nc.Write(*f)
		c.queued.Add(-int64(len(*f)))
		c.s.putBuf(f)
		if err != nil {
			failed = true
			c.close()
			continue
		}
		c.lastActive.Store(time.Now().UnixNano())
	}
}

// gather appends the frames already waiting to f, up to writeBatch bytes.
func (c *conn) gather(f *[]byte) *[]byte {
	for len(*f) < writeBatch {
		select {
		case g, ok := <-c.out:
			if !ok {
				return f
			}
			*f = append(*f, *g...)
			c.s.putBuf(g)
		default:
			return f
		}
	}
	return f
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
