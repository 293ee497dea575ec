package h2

import (
	"net"
	"sync"
	"time"
)

// WrapListener makes the connections l accepts batch their writes while the
// server is busy with what it has read, so that many answers (each in its
// own TLS record, as dnsperf needs) leave in one syscall: writes are held
// from the moment a read returns data until the next read, that is until
// the server has consumed every complete TLS record it received and would
// wait for more. A write while no data is being processed goes straight
// out. It is meant for the raw TCP listener under TLS; HTTP/1.1 and the TLS
// handshake work through it unchanged (the handshake's flight even leaves
// in one segment).
func WrapListener(l net.Listener) net.Listener { return corkListener{l} }

type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

// maxCorked bounds the bytes held back; beyond it writes go out at once.
const maxCorked = 64 << 10

// corkConn holds writes while corked. mu is held across socket writes so
// that held and new TLS records reach the socket in the order TLS sealed
// them.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
	err    error // a failed flush; every later write fails with it
}

// Read flushes what was held, then reads; data read starts a batch.
func (c *corkConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.corked = false
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.corked = true
		c.mu.Unlock()
	}
	return n, err
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.corked && len(c.buf)+len(p) <= maxCorked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *corkConn) flushLocked() error {
	if c.err != nil || len(c.buf) == 0 {
		return c.err
	}
	_, c.err = c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if cap(c.buf) > maxCorked {
		c.buf = nil
	}
	return c.err
}

// Close sends what is held (a GOAWAY, TLS close_notify) and closes. The
// short write deadline unblocks a write stuck on a client that does not
// read, and bounds this one.
func (c *corkConn) Close() error {
	c.Conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.mu.Lock()
	c.corked = false
	c.flushLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite keeps half-closing possible through the wrapper.
func (c *corkConn) CloseWrite() error {
	c.mu.Lock()
	c.corked = false
	err := c.flushLocked()
	c.mu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && err == nil {
		return cw.CloseWrite()
	}
	return err
}
