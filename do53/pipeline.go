package do53

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// The query pipeline every transport runs, in two halves: tryWire, inline
// and allocation-free, and answer, which decodes and may block.

// tryWire offers raw to the Handler's ServeWire when the query is plain
// enough for it, appending the answer to dst. It sets q.MaxSize (q.Msg stays
// nil) and counts an answered query. idle is the keepalive a stream
// listener advertises.
func (c *Config) tryWire(w resolver.WireHandler, q *resolver.Query, raw, dst []byte, idle time.Duration, start time.Time) ([]byte, bool) {
	info, ok := scanQuery(raw)
	if !ok {
		return nil, false
	}
	q.Msg, q.MaxSize = nil, info.maxSize(q.Transport)
	resp, ok := c.serveWire(w, q, raw, dst)
	if ok && (info.keepalive || info.padding) {
		// Reply's EDNS work, on the wire (finishWire). Browsers and
		// Android pad their queries (RFC 8467), so this is the common case
		// on encrypted listeners. An answer it cannot edit (no OPT at its
		// end) goes to the slow path, whose Handler counts the query a
		// second time.
		resp, ok = finishWire(resp, &info, q.Transport, idle, q.MaxSize)
	}
	if ok {
		c.Metrics.Observe(q, info.qtype, int(resp[3]&0xF), time.Since(start))
	}
	return resp, ok
}

// serveWire runs ServeWire with panic recovery; a panic counts and
// declines, so the slow path answers (SERVFAIL if it panics too).
func (c *Config) serveWire(w resolver.WireHandler, q *resolver.Query, raw, dst []byte) (resp []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
			resp, ok = nil, false
		}
	}()
	resp, ok = w.ServeWire(q, raw, dst)
	if ok && (len(resp) < headerLen || len(resp) > q.MaxSize) {
		return nil, false // breaks the WireHandler contract; let ServeDNS answer
	}
	return resp, ok
}

// answer decodes raw, runs the Handler (or takes ParseQuery's early
// response) and finishes the reply in buf's array, for q, whose connection
// facts are set; it fills q.Msg and q.MaxSize. idle is the keepalive to
// advertise on streams. err is ErrMalformed or resolver.ErrDrop when nothing
// is to be sent; both are counted.
func (c *Config) answer(ctx context.Context, q *resolver.Query, raw, buf []byte, idle time.Duration, start time.Time) ([]byte, error) {
	req, resp, err := ParseQuery(raw)
	if err != nil {
		c.Metrics.Dropped(q.Transport, DropMalformed)
		return nil, err
	}
	q.Msg, q.MaxSize = req, MaxSize(req, q.Transport)
	if resp == nil {
		resp, err = c.serveDNS(ctx, q)
	}
	wire, ok := reply(q, resp, err, buf, idle)
	if !ok {
		c.Metrics.Dropped(q.Transport, DropPolicy)
		return nil, resolver.ErrDrop
	}
	var qtype uint16
	if req != nil && len(req.Question) > 0 {
		qtype = req.Question[0].Qtype
	}
	rcode := int(wire[3] & 0xF)
	if err == nil && resp != nil && resp.Rcode&0xF == rcode {
		rcode = resp.Rcode // keep extended RCODEs such as BADVERS
	}
	c.Metrics.Observe(q, qtype, rcode, time.Since(start))
	return wire, nil
}

// serveDNS calls the Handler with a per-query deadline and turns a panic
// into errPanic.
func (c *Config) serveDNS(parent context.Context, q *resolver.Query) (resp *dns.Msg, err error) {
	ctx, cancel := context.WithTimeout(parent, c.QueryTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
			resp, err = nil, errPanic
		}
	}()
	return c.Handler.ServeDNS(ctx, q)
}

func (c *Config) panicked(r any) {
	c.Metrics.Panic()
	c.Logger.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
}
