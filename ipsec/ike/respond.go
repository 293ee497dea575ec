package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// errInvalidKE asks the peer to retry with another group.
type errInvalidKE struct{ group uint16 }

func (e errInvalidKE) Error() string { return fmt.Sprintf("KE group %d wanted", e.group) }

var errNoProposal = errors.New("ike: no acceptable proposal")

// selectProposal answers a peer's SA payload (RFC 7296 §2.7): the first of
// its proposals that one of ours accepts, reduced to one transform per
// type. keGroup is the group of the peer's KE payload (0 when none).
func selectProposal(sa *wire.SA, protocol uint8, ours []Proposal, keGroup uint16) (wire.Proposal, suite, error) {
	var wantGroup uint16
	for _, p := range sa.Proposals {
		if p.Protocol != protocol {
			continue
		}
		for _, o := range ours {
			var st suite
			out := wire.Proposal{Num: p.Num, Protocol: protocol}
			pick := func(typ uint8, ok func(t wire.Transform) bool) (wire.Transform, bool) {
				for _, t := range p.Transforms {
					if t.Type == typ && ok(t) {
						return t, true
					}
				}
				return wire.Transform{}, false
			}
			has := func(typ uint8) bool {
				return slices.ContainsFunc(p.Transforms, func(t wire.Transform) bool { return t.Type == typ })
			}
			e, ok := pick(wire.TransformENCR, func(t wire.Transform) bool {
				return slices.Contains(o.Encryption, Encryption{t.ID, t.KeyLength()})
			})
			if !ok {
				continue
			}
			st.encr, st.keyBits = e.ID, e.KeyLength()
			out.Transforms = append(out.Transforms, e)
			if protocol == wire.ProtoIKE {
				f, ok := pick(wire.TransformPRF, func(t wire.Transform) bool { return slices.Contains(o.PRF, t.ID) })
				if !ok {
					continue
				}
				st.prf = f.ID
				out.Transforms = append(out.Transforms, f)
			}
			if !isAEAD(st.encr) {
				in, ok := pick(wire.TransformINTEG, func(t wire.Transform) bool { return slices.Contains(o.Integrity, t.ID) })
				if !ok {
					continue
				}
				st.integ = in.ID
				out.Transforms = append(out.Transforms, in)
			} else if _, bad := pick(wire.TransformINTEG, func(t wire.Transform) bool { return t.ID != wire.IntegNone }); bad {
				continue
			}
			groups := o.Groups
			if protocol == wire.ProtoESP && len(groups) == 0 {
				groups = []uint16{wire.GroupX25519, wire.GroupECP256, wire.GroupECP384, wire.GroupMODP2048}
			}
			switch {
			case keGroup != 0:
				if _, ok := pick(wire.TransformKE, func(t wire.Transform) bool { return t.ID == keGroup }); ok && slices.Contains(groups, keGroup) {
					st.group = keGroup
					out.Transforms = append(out.Transforms, wire.Transform{Type: wire.TransformKE, ID: keGroup})
				} else {
					if g, ok := pick(wire.TransformKE, func(t wire.Transform) bool { return slices.Contains(groups, t.ID) }); ok && wantGroup == 0 {
						wantGroup = g.ID
					}
					continue
				}
			case has(wire.TransformKE):
				if _, ok := pick(wire.TransformKE, func(t wire.Transform) bool { return t.ID == 0 }); !ok {
					continue // the peer insists on a KE it did not send
				}
			}
			if protocol == wire.ProtoESP {
				n, ok := pick(wire.TransformESN, func(t wire.Transform) bool { return t.ID == wire.ESNNone })
				if !ok {
					continue
				}
				out.Transforms = append(out.Transforms, n)
			}
			return out, st, nil
		}
	}
	if wantGroup != 0 {
		return wire.Proposal{}, suite{}, errInvalidKE{wantGroup}
	}
	return wire.Proposal{}, suite{}, errNoProposal
}

func notifyPayload(t uint16, data []byte) []wire.Payload {
	return []wire.Payload{&wire.Notify{NotifyType: t, Data: data}}
}

type createReq struct {
	rekey    *wire.Notify
	sa       *wire.SA
	ni       []byte
	ke       *wire.KE
	tsi, tsr *wire.TS
}

func parseCreate(ps []wire.Payload) (r createReq) {
	for _, p := range ps {
		switch q := p.(type) {
		case *wire.Notify:
			if q.NotifyType == wire.NotifyRekeySA {
				r.rekey = q
			}
		case *wire.SA:
			r.sa = q
		case *wire.Nonce:
			r.ni = q.Data
		case *wire.KE:
			r.ke = q
		case *wire.TS:
			if q.Responder {
				r.tsr = q
			} else {
				r.tsi = q
			}
		}
	}
	return r
}

// onCreateChildSA answers a gateway-initiated CREATE_CHILD_SA: a CHILD_SA
// rekey (§1.3.3) or an IKE SA rekey (§1.3.2). New CHILD_SAs are refused.
func (s *Session) onCreateChildSA(sa *ikeSA, ps []wire.Payload) ([]wire.Payload, func() error) {
	r := parseCreate(ps)
	if r.sa == nil || r.ni == nil || len(r.sa.Proposals) == 0 {
		return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
	}
	if sa != s.ike {
		return notifyPayload(wire.NotifyTemporaryFailure, nil), nil
	}
	if r.sa.Proposals[0].Protocol == wire.ProtoIKE {
		return s.onIKERekey(r)
	}
	if r.rekey == nil || r.tsi == nil || r.tsr == nil {
		return notifyPayload(wire.NotifyNoAdditionalSAs, nil), nil
	}
	var old *child
	if len(r.rekey.SPI) == 4 {
		out := binary.BigEndian.Uint32(r.rekey.SPI)
		for _, c := range s.children {
			if c.sa.OutSPI == out && c.replacedBy == 0 {
				old = c
			}
		}
	}
	if old == nil {
		return []wire.Payload{&wire.Notify{Protocol: wire.ProtoESP, NotifyType: wire.NotifyChildSANotFound, SPI: r.rekey.SPI}}, nil
	}
	// Our own rekey of this CHILD_SA may be in flight: we answer normally
	// and rekeyChild settles the collision by the nonces (RFC 7296 §2.8.1).
	collides := old.sa.InSPI == s.rekeying
	var group uint16
	if r.ke != nil {
		group = r.ke.Group
	}
	prop, st, err := selectProposal(r.sa, wire.ProtoESP, s.cfg.ESPProposals, group)
	var ike errInvalidKE
	if errors.As(err, &ike) {
		return notifyPayload(wire.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, ike.group)), nil
	}
	if err != nil {
		return notifyPayload(wire.NotifyNoProposalChosen, nil), nil
	}
	var theirSPI []byte
	for _, p := range r.sa.Proposals {
		if p.Num == prop.Num {
			theirSPI = p.SPI
		}
	}
	if len(theirSPI) != 4 {
		return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
	}
	resp := []wire.Payload{}
	var gir []byte
	var kePayload *wire.KE
	if r.ke != nil {
		k, err := newKex(r.ke.Group, s.rand)
		if err == nil {
			gir, err = k.shared(r.ke.Data)
		}
		if err != nil {
			return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
		}
		kePayload = &wire.KE{Group: r.ke.Group, Data: k.public()}
	}
	inSPI := s.newSPI32()
	nr := s.nonce()
	km, err := deriveChild(s.ike.keys.prf, s.ike.keys.d, gir, r.ni, nr, st)
	if err != nil {
		return notifyPayload(wire.NotifyNoProposalChosen, nil), nil
	}
	prop.SPI = binary.BigEndian.AppendUint32(nil, inSPI)
	resp = append(resp, &wire.SA{Proposals: []wire.Proposal{prop}}, &wire.Nonce{Data: nr})
	if kePayload != nil {
		resp = append(resp, kePayload)
	}
	resp = append(resp, r.tsi, r.tsr)
	bits := st.keyBits
	if st.encr == wire.EncrChaCha20Poly1305 {
		bits = 256
	}
	// The gateway initiated: i→r is gateway→us, our inbound.
	c := &child{suite: st, deferred: true, sa: ChildSA{
		InSPI: inSPI, OutSPI: binary.BigEndian.Uint32(theirSPI),
		Cipher: st.encr, KeyBits: bits, Integ: st.integ,
		InKey: km.encrI, InInteg: km.integI, OutKey: km.encrR, OutInteg: km.integR,
		ESN: st.esn, Local: r.tsr.Selectors, Remote: r.tsi.Selectors,
		Replaces: old.sa.InSPI, DeferOutbound: true,
	}}
	if err := s.install(c); err != nil {
		s.log.Warn("installing rekeyed CHILD_SA", "err", err)
		return notifyPayload(wire.NotifyNoProposalChosen, nil), nil
	}
	c.rekeyAt = old.rekeyAt
	if collides {
		c.ni, c.nr = r.ni, nr
		s.collided = c
		s.log.Info("CHILD_SA rekey collision", "in_spi", fmt.Sprintf("%08x", old.sa.InSPI))
		return resp, nil
	}
	old.replacedBy = inSPI
	s.counted(1, 0)
	s.log.Info("gateway rekeyed CHILD_SA", "old_in_spi", fmt.Sprintf("%08x", old.sa.InSPI), "new_in_spi", fmt.Sprintf("%08x", inSPI))
	return resp, nil
}

// activate switches outbound to a CHILD_SA installed with DeferOutbound.
func (s *Session) activate(inSPI uint32) {
	c := s.children[inSPI]
	if c == nil || !c.deferred {
		return
	}
	c.deferred = false
	if err := s.keyer.ActivateChild(inSPI); err != nil {
		s.log.Warn("activating CHILD_SA", "err", err)
	}
}

// onIKERekey answers the gateway's IKE SA rekey (RFC 7296 §2.18): the
// gateway becomes the new SA's initiator, message IDs restart at 0, and
// the CHILD_SAs move to the new IKE SA.
func (s *Session) onIKERekey(r createReq) ([]wire.Payload, func() error) {
	if r.ke == nil {
		return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
	}
	prop, st, err := selectProposal(r.sa, wire.ProtoIKE, s.cfg.IKEProposals, r.ke.Group)
	var ike errInvalidKE
	if errors.As(err, &ike) {
		return notifyPayload(wire.NotifyInvalidKEPayload, binary.BigEndian.AppendUint16(nil, ike.group)), nil
	}
	if err != nil {
		return notifyPayload(wire.NotifyNoProposalChosen, nil), nil
	}
	var theirSPI []byte
	for _, p := range r.sa.Proposals {
		if p.Num == prop.Num {
			theirSPI = p.SPI
		}
	}
	if len(theirSPI) != 8 {
		return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
	}
	k, err := newKex(r.ke.Group, s.rand)
	var gir []byte
	if err == nil {
		gir, err = k.shared(r.ke.Data)
	}
	if err != nil {
		return notifyPayload(wire.NotifyInvalidSyntax, nil), nil
	}
	nr := s.nonce()
	spiR := s.newSPI64()
	spiI := binary.BigEndian.Uint64(theirSPI)
	old := s.ike.keys
	skeyseed := old.prf.sum(old.d, gir, r.ni, nr)
	keys, err := deriveIKE(st, skeyseed, r.ni, nr, spiI, spiR, false, s.rand)
	if err != nil {
		return notifyPayload(wire.NotifyNoProposalChosen, nil), nil
	}
	prop.SPI = binary.BigEndian.AppendUint64(nil, spiR)
	resp := []wire.Payload{&wire.SA{Proposals: []wire.Proposal{prop}}, &wire.Nonce{Data: nr}, &wire.KE{Group: r.ke.Group, Data: k.public()}}
	next := &ikeSA{spiI: spiI, spiR: spiR, weInit: false, suite: st, keys: keys, frag: s.ike.frag}
	next.rekeyAt = jitter(s.cfg.IKERekey)
	if s.rekeyingIKE {
		// Our IKE rekey is in flight: rekeyIKE settles the collision by
		// the nonces (RFC 7296 §2.8.2).
		next.ni, next.nr = r.ni, nr
		s.collidedIKE = next
		return resp, nil
	}
	return resp, func() error {
		s.retire(s.ike)
		s.ike = next
		s.counted(0, 1)
		s.log.Info("gateway rekeyed the IKE SA", "group", st.group)
		return nil
	}
}
