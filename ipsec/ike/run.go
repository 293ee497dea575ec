package ike

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// run is the session goroutine after Dial: it answers the gateway, probes
// it after silence (DPD, RFC 7296 §2.4) and tears down on Close.
func (s *Session) run(ctx context.Context) {
	defer close(s.done)
	defer s.cancel()
	defer s.dropChildren()
	dpd := time.NewTimer(s.dpdWait())
	defer dpd.Stop()
	rekey := time.NewTimer(s.rekeyWait())
	defer rekey.Stop()
	for {
		select {
		case <-rekey.C:
			if at := s.ike.rekeyAt; !at.IsZero() && !time.Now().Before(at) {
				if err := s.rekeyIKE(ctx); err != nil {
					if errors.Is(err, ErrTimeout) {
						s.fail(fmt.Errorf("rekeying the IKE SA: %w", err))
						return
					}
					s.log.Warn("rekeying the IKE SA", "err", err)
					s.ike.rekeyAt = time.Now().Add(10*time.Second + time.Duration(rand.Int64N(int64(5*time.Second))))
				}
			} else if c := s.nextRekey(); c != nil && !time.Now().Before(c.rekeyAt) {
				if err := s.rekeyChild(ctx, c); err != nil {
					if errors.Is(err, ErrTimeout) {
						s.fail(fmt.Errorf("rekeying CHILD_SA: %w", err))
						return
					}
					s.log.Warn("rekeying CHILD_SA", "err", err)
					c.rekeyAt = time.Now().Add(10*time.Second + time.Duration(rand.Int64N(int64(5*time.Second))))
				}
			}
			rekey.Reset(s.rekeyWait())
		case <-ctx.Done():
			s.fail(ErrClosed)
			return
		case spi := <-s.rekeyC:
			if spi == 0 {
				s.ike.rekeyAt = time.Now()
				rekey.Reset(0)
			}
			for _, c := range s.children {
				if (c.sa.InSPI == spi || c.sa.OutSPI == spi) && c.replacedBy == 0 {
					c.rekeyAt = time.Now()
					rekey.Reset(0)
				}
			}
		case reply := <-s.closeC:
			err := s.deleteIKE(ctx)
			s.fail(ErrClosed)
			reply <- err
			return
		case raw := <-s.in:
			if err := s.inbound(raw); err != nil {
				if errors.Is(err, ErrPeerDelete) {
					s.log.Info("gateway deleted the IKE SA")
					s.fail(err)
					return
				}
				s.log.Debug("dropping message", "err", err)
			}
		case <-dpd.C:
			if a := s.cfg.InboundActivity; a != nil {
				// RFC 7296 §2.4: only probe when nothing protected arrived.
				if v := a(); v != s.activity {
					s.activity = v
					s.lastRecvNow()
				}
			}
			if s.cfg.DPDDelay > 0 && time.Since(s.lastRecv) >= s.cfg.DPDDelay {
				if err := s.informational(ctx, nil); err != nil {
					s.log.Warn("gateway is not answering", "err", err)
					s.fail(fmt.Errorf("dead peer detection: %w", err))
					return
				}
			}
			dpd.Reset(s.dpdWait())
		}
	}
}

func (s *Session) retire(sa *ikeSA) { s.retiring = append(s.retiring, sa) }

func (s *Session) unretire(sa *ikeSA) {
	s.retiring = slices.DeleteFunc(s.retiring, func(r *ikeSA) bool { return r == sa })
}

// deleteIKESA deletes a rekeyed or redundant IKE SA on itself (its
// CHILD_SAs belong to the current one) and forgets it.
func (s *Session) deleteIKESA(ctx context.Context, sa *ikeSA) {
	del, err := s.seal(sa, sa.header(wire.Informational, sa.nextOut, false), []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}})
	if err == nil {
		sa.nextOut++
		_, err = s.roundTrip(ctx, sa, del, wire.Informational, sa.nextOut-1, true)
	}
	if err != nil {
		s.log.Debug("deleting a rekeyed IKE SA", "err", err)
	}
	s.unretire(sa)
}

// nextRekey is the live CHILD_SA due for rekeying first.
func (s *Session) nextRekey() *child {
	var next *child
	for _, c := range s.children {
		if c.replacedBy == 0 && !c.rekeyAt.IsZero() && (next == nil || c.rekeyAt.Before(next.rekeyAt)) {
			next = c
		}
	}
	return next
}

func (s *Session) rekeyWait() time.Duration {
	w := time.Hour
	if c := s.nextRekey(); c != nil {
		w = min(w, max(time.Until(c.rekeyAt), 0))
	}
	if at := s.ike.rekeyAt; !at.IsZero() {
		w = min(w, max(time.Until(at), 0))
	}
	return w
}

func (s *Session) dpdWait() time.Duration {
	if s.cfg.DPDDelay < 0 {
		return time.Hour
	}
	if w := s.cfg.DPDDelay - time.Since(s.lastRecv); w > 0 {
		return w
	}
	return s.cfg.DPDDelay
}

// inbound handles a message that is not a response we wait for.
func (s *Session) inbound(raw []byte) error {
	m, err := wire.Parse(raw)
	if err != nil {
		return err
	}
	if m.IsResponse() {
		return errors.New("unexpected response")
	}
	for _, sa := range append([]*ikeSA{s.ike}, s.retiring...) {
		if m.SPIi == sa.spiI && m.SPIr == sa.spiR {
			return s.handleRequest(sa, raw, m)
		}
	}
	return errors.New("request for an unknown IKE SA")
}

// informational sends an INFORMATIONAL request with ps (none for a liveness
// probe) and waits for the answer.
func (s *Session) informational(ctx context.Context, ps []wire.Payload) error {
	_, err := s.request(ctx, wire.Informational, ps)
	return err
}

func (s *Session) deleteIKE(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*s.cfg.RetransmitTimeout)
	defer cancel()
	err := s.informational(ctx, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}})
	if err != nil {
		return fmt.Errorf("ike: deleting IKE SA: %w", err)
	}
	s.log.Info("IKE SA deleted")
	return nil
}

func (s *Session) dropChildren() {
	for spi := range s.children {
		s.keyer.DeleteChild(spi)
		delete(s.children, spi)
	}
}

// handleRequest answers a request from the gateway (RFC 7296 §2.2: each
// exactly once; a retransmission gets our cached response again).
func (s *Session) handleRequest(sa *ikeSA, raw []byte, m *wire.Message) error {
	if sa.lastResp != nil && m.MessageID+1 == sa.nextIn {
		if len(m.Payloads) == 0 {
			return errors.New("retransmitted request without payloads")
		}
		if f, ok := m.Payloads[len(m.Payloads)-1].(*wire.Fragment); !ok || f.Number == 1 {
			s.send(sa.lastResp) // once per retransmitted request, not per fragment
		}
		return nil
	}
	if m.MessageID != sa.nextIn {
		return fmt.Errorf("request with message ID %d, expected %d", m.MessageID, sa.nextIn)
	}
	ps, complete, err := s.open(sa, raw, m)
	if err != nil || !complete {
		return err
	}
	s.lastRecvNow()
	var resp []wire.Payload
	var after func() error
	switch m.Exchange {
	case wire.Informational:
		resp, after = s.onInformational(sa, ps)
	case wire.CreateChildSA:
		resp, after = s.onCreateChildSA(sa, ps)
	default:
		resp = []wire.Payload{&wire.Notify{NotifyType: wire.NotifyInvalidSyntax}}
	}
	out, err := s.seal(sa, sa.header(m.Exchange, m.MessageID, true), resp)
	if err != nil {
		return err
	}
	sa.lastResp = out
	sa.nextIn++
	s.send(out)
	if after != nil {
		return after()
	}
	return nil
}

// onInformational handles DPD probes (empty) and DELETEs (RFC 7296 §1.4.1):
// for deleted CHILD_SAs we answer with our inbound SPIs of the same pairs.
func (s *Session) onInformational(sa *ikeSA, ps []wire.Payload) ([]wire.Payload, func() error) {
	var ours [][]byte
	for _, p := range ps {
		d, ok := p.(*wire.Delete)
		if !ok {
			continue
		}
		switch d.Protocol {
		case wire.ProtoIKE:
			if sa != s.ike {
				// The gateway retires an IKE SA that was rekeyed (RFC 7296 §2.18).
				return nil, func() error { s.unretire(sa); return nil }
			}
			return nil, func() error { return ErrPeerDelete }
		case wire.ProtoESP:
			for _, spi := range d.SPIs {
				if len(spi) != 4 {
					continue
				}
				out := binary.BigEndian.Uint32(spi)
				for in, c := range s.children {
					if c.sa.OutSPI == out {
						if c.replacedBy != 0 {
							s.activate(c.replacedBy)
						}
						ours = append(ours, binary.BigEndian.AppendUint32(nil, in))
						s.keyer.DeleteChild(in)
						delete(s.children, in)
						s.log.Info("gateway deleted CHILD_SA", "in_spi", fmt.Sprintf("%08x", in))
					}
				}
			}
		}
	}
	if len(ours) == 0 {
		return nil, nil
	}
	return []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPIs: ours}}, nil
}
