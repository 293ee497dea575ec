package doh

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

// limitListener closes connections accepted beyond max open ones, so that
// clients that only open connections cannot pin unbounded memory; each
// refusal counts as an overload drop. A refused client fails fast and can
// try another server, unlike one left waiting in the accept queue.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	metrics *do53.Metrics
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		c.Close()
		l.metrics.Dropped(resolver.HTTPS, do53.DropOverload)
	}
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
