package doq

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
	errPanic      = errors.New("doq: handler panicked")
	errNoResponse = errors.New("doq: handler returned no response")
)

// answer runs a vetted query through the Handler and finishes the response
// with do53.Reply, as every Lamina transport does. ok=false means send
// nothing (resolver.ErrDrop).
func (s *Server) answer(ctx context.Context, q *resolver.Query, raw []byte, req, early *dns.Msg, start time.Time) ([]byte, bool) {
	q.Msg = req
	if early != nil {
		return s.finish(q, early, nil, start)
	}
	// The wire fast path does not pad, so padded queries take the slow one.
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
		s.cfg.Metrics.Dropped(resolver.QUIC, do53.DropPolicy)
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
