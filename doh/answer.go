package doh

import (
	"context"

	"github.com/laminadns/lamina/resolver"
)

// answer runs one raw query through do53's Responder, the one-query path
// every transport shares (fast path, FORMERR/NOTIMP/BADVERS, the Handler
// under QueryTimeout with panics answered SERVFAIL, do53.Reply, metrics), and
// returns the finished wire response. ok=false means the bytes were not a
// query at all or the policy asked for no answer; both are counted there.
func (s *Server) answer(ctx context.Context, q *resolver.Query, raw []byte) (wire []byte, ok bool) {
	wire, err := s.resp.Respond(ctx, q, raw, nil)
	return wire, err == nil
}
