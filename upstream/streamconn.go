package upstream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// streamConn is one pipelined connection of a [streamPool]: writers take
// turns on wmu, one reader goroutine hands each answer to the query waiting
// for its ID.
type streamConn struct {
	p        *streamPool
	created  time.Time
	ready    chan struct{} // closed once the dial finished, well or not
	conn     net.Conn      // set before ready is closed
	ech      bool
	load     atomic.Int32 // queries holding a slot, for picking a connection
	broken   atomic.Bool  // set with err, readable without mu
	answered atomic.Bool  // an answer arrived: the connection worked

	wmu sync.Mutex // serialises frames

	mu    sync.Mutex
	calls map[uint16]*call // by wire ID; nil once broken
	err   error            // why the connection is unusable
}

type call struct {
	req *dns.Msg
	ch  chan result // buffered, written once
}

type result struct {
	msg *dns.Msg
	err error
}

// roundTrip sends req on sc and waits for its answer. It releases the slot
// reserved by streamPool.get. Errors wrap errStale when the connection broke
// before the answer came.
func (sc *streamConn) roundTrip(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	defer sc.load.Add(-1)
	select {
	case <-sc.ready:
	case <-ctx.Done():
		return nil, ctxError(ctx)
	}

	c := &call{req: req, ch: make(chan result, 1)}
	sc.mu.Lock()
	if sc.calls == nil {
		err := sc.err
		sc.mu.Unlock()
		return nil, err
	}
	id := randID()
	for sc.calls[id] != nil { // at most hardInFlight of 65536 IDs are taken
		id = randID()
	}
	sc.calls[id] = c
	sc.mu.Unlock()

	buf := getBuf()
	wire, err := packQuery(req, id, sc.p.pad, (*buf)[2:])
	if err != nil {
		putBuf(buf)
		sc.forget(id)
		return nil, fmt.Errorf("packing query: %w", err)
	}
	frame := (*buf)[:2+len(wire)]
	binary.BigEndian.PutUint16(frame, uint16(len(wire)))
	sc.wmu.Lock()
	sc.conn.SetWriteDeadline(time.Now().Add(sc.p.timeout))
	_, err = sc.conn.Write(frame)
	sc.wmu.Unlock()
	putBuf(buf)
	if err != nil {
		sc.fail(fmt.Errorf("%w: writing: %w", errStale, err))
	}

	select {
	case r := <-c.ch:
		return r.msg, r.err
	case <-ctx.Done():
		sc.forget(id)
		return nil, ctxError(ctx)
	}
}

// forget drops a query that no longer waits; a late answer to it is counted
// as unknown_id.
func (sc *streamConn) forget(id uint16) {
	sc.mu.Lock()
	if sc.calls != nil {
		delete(sc.calls, id)
	}
	sc.mu.Unlock()
}

// fail marks sc unusable, fails the queries waiting on it, closes the socket
// and removes sc from its pool. Only the first call has an effect.
func (sc *streamConn) fail(err error) {
	sc.mu.Lock()
	if sc.err != nil {
		sc.mu.Unlock()
		return
	}
	sc.err = err
	sc.broken.Store(true)
	calls := sc.calls
	sc.calls = nil
	sc.mu.Unlock()
	if sc.conn != nil {
		sc.conn.Close()
	}
	for _, c := range calls {
		c.ch <- result{err: err}
	}
	sc.p.remove(sc)
}

// readLoop reads answers until the connection fails or idles out.
func (sc *streamConn) readLoop() {
	defer sc.p.wg.Done()
	r := bufio.NewReaderSize(sc.conn, 4096)
	buf := getBuf()
	defer putBuf(buf)
	var hdr [2]byte
	for {
		sc.conn.SetReadDeadline(time.Now().Add(sc.p.idle))
		n, err := io.ReadFull(r, hdr[:])
		if n == 0 && isTimeout(err) {
			sc.mu.Lock()
			idle := len(sc.calls) == 0
			sc.mu.Unlock()
			if !idle {
				continue // slow server; each query has its own deadline
			}
			sc.fail(fmt.Errorf("%w: idle for %s", errStale, sc.p.idle))
			return
		}
		if err == nil {
			size := int(binary.BigEndian.Uint16(hdr[:]))
			_, err = io.ReadFull(r, (*buf)[:size])
			if err == nil {
				sc.deliver((*buf)[:size])
				continue
			}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("truncated frame: %w", err)
		}
		sc.fail(fmt.Errorf("%w: reading: %w", errStale, err))
		return
	}
}

// deliver hands one framed message to the query with its ID. Messages
// nobody waits for, or that do not answer the waiting query, are dropped and
// counted; the query keeps waiting for its real answer until its deadline.
func (sc *streamConn) deliver(raw []byte) {
	if len(raw) < 12 {
		sc.p.m.drop(dropMalformed)
		return
	}
	id := binary.BigEndian.Uint16(raw)
	sc.mu.Lock()
	c := sc.calls[id]
	sc.mu.Unlock()
	if c == nil {
		sc.p.m.drop(dropUnknownID)
		return
	}
	resp, why := unpackResponse(c.req, raw, id)
	if why != "" {
		sc.p.m.drop(why)
		return
	}
	sc.mu.Lock()
	if sc.calls[id] != c { // gave up meanwhile
		sc.mu.Unlock()
		return
	}
	delete(sc.calls, id)
	sc.mu.Unlock()
	sc.answered.Store(true)
	c.ch <- result{msg: resp}
}
