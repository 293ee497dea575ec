package doh

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/do53"
	"github.com/laminadns/lamina/resolver"
)

var (
	errPanic      = errors.New("doh: handler panicked")
	errNoResponse = errors.New("doh: handler returned no response")
)

// answer runs one decoded-or-raw query through the Handler and returns the
// finished wire response; ok=false means the Handler asked for no answer
// (resolver.ErrDrop) or the bytes were not a query at all.
//
// It mirrors the other transports: do53.ParseQuery vets the bytes,
// resolver.WireHandler gets the first try at plain queries, and do53.Reply
// sets ID and EDNS, pads (the query carried Padding: the wire fast path is
// skipped then, since it does not pad) and truncates.
func (s *Server) answer(ctx context.Context, q *resolver.Query, raw []byte) (wire []byte, ok bool) {
	start := time.Now()
	q.MaxSize = dns.MaxMsgSize
	req, early, err := do53.ParseQuery(raw)
	if err != nil {
		s.cfg.Metrics.Dropped(q.Transport, do53.DropMalformed)
		return nil, false
	}
	q.Msg = req
	if early != nil {
		return s.finish(q, early, nil, start)
	}
	if s.wire != nil && !padded(req) {
		q.Msg = nil
		if resp, ok := s.serveWire(q, raw); ok {
			s.cfg.Metrics.Observe(q, req.Question[0].Qtype, int(resp[3]&0xF), time.Since(start))
			return resp, true
		}
		q.Msg = req
	}
	resp, err := s.serveDNS(ctx, q)
	return s.finish(q, resp, err, start)
}

func (s *Server) finish(q *resolver.Query, resp *dns.Msg, err error, start time.Time) ([]byte, bool) {
	if err == nil && resp == nil {
		err = errNoResponse
	}
	wire, ok := do53.Reply(q, resp, err, nil)
	if !ok {
		s.cfg.Metrics.Dropped(q.Transport, do53.DropPolicy)
		return nil, false
	}
	var qtype uint16
	if q.Msg != nil && len(q.Msg.Question) > 0 {
		qtype = q.Msg.Question[0].Qtype
	}
	s.cfg.Metrics.Observe(q, qtype, int(wire[3]&0xF), time.Since(start))
	return wire, true
}

func (s *Server) serveDNS(parent context.Context, q *resolver.Query) (resp *dns.Msg, err error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.QueryTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.panicked(r)
			resp, err = nil, errPanic
		}
	}()
	return s.cfg.Handler.ServeDNS(ctx, q)
}

func (s *Server) serveWire(q *resolver.Query, raw []byte) (resp []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.panicked(r)
			resp, ok = nil, false
		}
	}()
	resp, ok = s.wire.ServeWire(q, raw, nil)
	if ok && (len(resp) < 12 || len(resp) > q.MaxSize) {
		return nil, false
	}
	return resp, ok
}

func (s *Server) panicked(r any) {
	s.cfg.Metrics.Panic()
	s.log.Error("handler panic", "panic", r, "stack", string(debug.Stack()))
}

// padded reports a query carrying an EDNS Padding option (RFC 7830), whose
// answer must be padded too (RFC 8467).
func padded(req *dns.Msg) bool {
	if o := req.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if e.Option() == dns.EDNS0PADDING {
				return true
			}
		}
	}
	return false
}
