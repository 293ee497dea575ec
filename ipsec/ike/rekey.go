package ike

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// rekeyTime is when to rekey a new CHILD_SA: ChildRekey minus up to 10%
// jitter, so we usually rekey before the gateway and two tunnels do not
// rekey in lockstep.
func (s *Session) rekeyTime() time.Time { return jitter(s.cfg.ChildRekey) }

// jitter is now + d minus up to 10%, or zero (never) for d <= 0.
func jitter(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d - time.Duration(rand.Int64N(int64(d/10)+1)))
}

func (s *Session) counted(child, ike int) {
	s.mu.Lock()
	s.info.ChildRekeys += child
	s.info.IKERekeys += ike
	s.mu.Unlock()
}

// rekeyIKE replaces the IKE SA (RFC 7296 §1.3.2, §2.18): we stay the
// initiator, the CHILD_SAs move to the new SA and the old one is deleted.
func (s *Session) rekeyIKE(ctx context.Context) error {
	s.rekeyingIKE = true
	defer func() { s.rekeyingIKE = false }()
	old := s.ike
	group := old.suite.group
	spiI := s.newSPI64()
	ni := s.nonce()
	for attempt := 0; attempt < 3; attempt++ {
		k, err := newKex(group, s.rand)
		if err != nil {
			return err
		}
		offered := s.cfg.IKEProposals
		r, err := s.request(ctx, wire.CreateChildSA, []wire.Payload{
			saPayload(wire.ProtoIKE, binary.BigEndian.AppendUint64(nil, spiI), offered, true),
			&wire.Nonce{Data: ni}, &wire.KE{Group: group, Data: k.public()},
		})
		if err != nil {
			return fmt.Errorf("IKE rekey: %w", err)
		}
		if n := findNotify(r.payloads, wire.NotifyInvalidKEPayload); n != nil && len(n.Data) == 2 {
			group = binary.BigEndian.Uint16(n.Data)
			continue
		}
		if err := notifyError(r.payloads, "CREATE_CHILD_SA (IKE rekey)"); err != nil {
			return err
		}
		cr := parseCreate(r.payloads)
		if cr.sa == nil || cr.ke == nil || cr.ni == nil {
			return errors.New("ike: IKE rekey response lacks SA, KE or Nonce")
		}
		st, spi, err := chosen(cr.sa, wire.ProtoIKE, offered, true)
		if err != nil {
			return err
		}
		if len(spi) != 8 || st.group != group || cr.ke.Group != group {
			return errors.New("ike: IKE rekey response with a bad SPI or KE group")
		}
		gir, err := k.shared(cr.ke.Data)
		if err != nil {
			return err
		}
		nr := cr.ni
		spiR := binary.BigEndian.Uint64(spi)
		keys, err := deriveIKE(st, old.keys.prf.sum(old.keys.d, gir, ni, nr), ni, nr, spiI, spiR, true, s.rand)
		if err != nil {
			return err
		}
		ours := &ikeSA{spiI: spiI, spiR: spiR, weInit: true, suite: st, keys: keys, frag: old.frag, rekeyAt: jitter(s.cfg.IKERekey)}
		s.counted(0, 1)
		if theirs := s.collidedIKE; theirs != nil {
			s.collidedIKE = nil
			// RFC 7296 §2.8.2: the IKE SA created with the lowest nonce is
			// redundant and deleted by its initiator; the winner's
			// initiator deletes the old one.
			if bytes.Compare(minNonce(ni, nr), minNonce(theirs.ni, theirs.nr)) < 0 {
				s.log.Info("lost the IKE rekey collision")
				s.ike = theirs
				s.retire(old) // the gateway deletes it
				s.deleteIKESA(ctx, ours)
				return nil
			}
			s.log.Info("won the IKE rekey collision")
			s.retire(theirs) // the gateway deletes it
		}
		s.ike = ours
		s.retire(old)
		s.log.Info("rekeyed the IKE SA", "group", st.group)
		s.deleteIKESA(ctx, old)
		return nil
	}
	return errors.New("ike: IKE rekey: too many INVALID_KE_PAYLOAD answers")
}

// rekeyChild replaces old with a new CHILD_SA (RFC 7296 §1.3.3), switches
// outbound to it and deletes old.
func (s *Session) rekeyChild(ctx context.Context, old *child) error {
	s.rekeying = old.sa.InSPI
	defer func() { s.rekeying = 0 }()
	inSPI := s.newSPI32()
	ni := s.nonce()
	group := s.cfg.PFS
	offered := s.cfg.ESPProposals
	for attempt := 0; attempt < 3; attempt++ {
		var k kex
		ps := []wire.Payload{&wire.Notify{Protocol: wire.ProtoESP, NotifyType: wire.NotifyRekeySA, SPI: binary.BigEndian.AppendUint32(nil, old.sa.InSPI)}}
		if group != 0 {
			if len(offered[0].Groups) == 0 || !slices.Contains(offered[0].Groups, group) {
				offered = slices.Clone(offered)
				for i := range offered {
					offered[i].Groups = append([]uint16{group}, offered[i].Groups...)
				}
			}
		}
		ps = append(ps, saPayload(wire.ProtoESP, binary.BigEndian.AppendUint32(nil, inSPI), offered, group != 0), &wire.Nonce{Data: ni})
		if group != 0 {
			var err error
			if k, err = newKex(group, s.rand); err != nil {
				return err
			}
			ps = append(ps, &wire.KE{Group: group, Data: k.public()})
		}
		ps = append(ps, &wire.TS{Selectors: old.sa.Local}, &wire.TS{Responder: true, Selectors: old.sa.Remote})
		r, err := s.request(ctx, wire.CreateChildSA, ps)
		if err != nil {
			return fmt.Errorf("CREATE_CHILD_SA: %w", err)
		}
		if n := findNotify(r.payloads, wire.NotifyInvalidKEPayload); n != nil && len(n.Data) == 2 {
			group = binary.BigEndian.Uint16(n.Data)
			continue
		}
		if err := notifyError(r.payloads, "CREATE_CHILD_SA"); err != nil {
			return err
		}
		var gir []byte
		if k != nil {
			cr := parseCreate(r.payloads)
			if cr.ke == nil || cr.ke.Group != group {
				return errors.New("ike: CREATE_CHILD_SA response lacks our KE group")
			}
			if gir, err = k.shared(cr.ke.Data); err != nil {
				return err
			}
		}
		var nr []byte
		for _, p := range r.payloads {
			if n, ok := p.(*wire.Nonce); ok {
				nr = n.Data
			}
		}
		if nr == nil {
			return errors.New("ike: CREATE_CHILD_SA response lacks Nr")
		}
		c, err := s.childFromResponse(r.payloads, inSPI, offered, group != 0, gir, ni, nr)
		if err != nil {
			return err
		}
		c.sa.Replaces = old.sa.InSPI
		c.rekeyAt = s.rekeyTime()
		if err := s.install(c); err != nil {
			return err
		}
		s.counted(1, 0)
		s.log.Info("rekeyed CHILD_SA", "old_in_spi", fmt.Sprintf("%08x", old.sa.InSPI), "new_in_spi", fmt.Sprintf("%08x", inSPI))
		if theirs := s.collided; theirs != nil && theirs.sa.Replaces == old.sa.InSPI {
			s.collided = nil
			// RFC 7296 §2.8.1: the SA created with the lowest of the four
			// nonces is redundant and closed by its initiator; the winner's
			// initiator deletes the old SA.
			if bytes.Compare(minNonce(ni, nr), minNonce(theirs.ni, theirs.nr)) < 0 {
				s.log.Info("lost the CHILD_SA rekey collision", "redundant_in_spi", fmt.Sprintf("%08x", inSPI))
				old.replacedBy = theirs.sa.InSPI
				s.activate(theirs.sa.InSPI)
				return s.deleteChild(ctx, c)
			}
			s.log.Info("won the CHILD_SA rekey collision", "redundant_in_spi", fmt.Sprintf("%08x", theirs.sa.InSPI))
		}
		old.replacedBy = inSPI
		return s.deleteChild(ctx, old)
	}
	return errors.New("ike: CREATE_CHILD_SA: too many INVALID_KE_PAYLOAD answers")
}

func minNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

// deleteChild deletes a CHILD_SA at the gateway (RFC 7296 §1.4.1) and then
// locally.
func (s *Session) deleteChild(ctx context.Context, c *child) error {
	err := s.informational(ctx, []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.sa.InSPI)}}})
	if _, ok := s.children[c.sa.InSPI]; ok {
		s.keyer.DeleteChild(c.sa.InSPI)
		delete(s.children, c.sa.InSPI)
	}
	return err
}
