package ike

import (
	"errors"
	"fmt"
	"slices"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// Encryption names an encryption transform and its key size in bits (0 for
// ChaCha20-Poly1305, which has a fixed key).
type Encryption struct {
	ID   uint16
	Bits int
}

// Proposal is a set of acceptable algorithms, sent as one SA proposal; the
// gateway picks one transform of each type.
type Proposal struct {
	Encryption []Encryption // required
	Integrity  []uint16     // required unless every Encryption is an AEAD
	PRF        []uint16     // IKE SA only
	Groups     []uint16     // IKE SA: required; CHILD_SA: PFS groups for rekeys, empty for none
}

// DefaultIKEProposals are modern defaults: AEADs first, then AES-CBC with
// HMAC-SHA2; P-256 first (it works with every gateway), then X25519, P-384
// and MODP-2048.
func DefaultIKEProposals() []Proposal {
	groups := []uint16{wire.GroupECP256, wire.GroupX25519, wire.GroupECP384, wire.GroupMODP2048}
	prfs := []uint16{wire.PRFHMACSHA256, wire.PRFHMACSHA384, wire.PRFHMACSHA512}
	return []Proposal{
		{Encryption: []Encryption{{wire.EncrAESGCM16, 256}, {wire.EncrAESGCM16, 128}, {wire.EncrChaCha20Poly1305, 0}}, PRF: prfs, Groups: groups},
		{Encryption: []Encryption{{wire.EncrAESCBC, 256}, {wire.EncrAESCBC, 128}}, Integrity: []uint16{wire.IntegHMACSHA256128, wire.IntegHMACSHA512256}, PRF: prfs, Groups: groups},
	}
}

// DefaultESPProposals offer AES-GCM-16, ChaCha20-Poly1305 and AES-CBC with
// HMAC-SHA2-256-128, without PFS.
func DefaultESPProposals() []Proposal {
	return []Proposal{
		{Encryption: []Encryption{{wire.EncrAESGCM16, 256}, {wire.EncrAESGCM16, 128}, {wire.EncrChaCha20Poly1305, 0}}},
		{Encryption: []Encryption{{wire.EncrAESCBC, 256}, {wire.EncrAESCBC, 128}}, Integrity: []uint16{wire.IntegHMACSHA256128}},
	}
}

func (p Proposal) validate(ike bool) error {
	if len(p.Encryption) == 0 {
		return errors.New("proposal without encryption")
	}
	aead := true
	for _, e := range p.Encryption {
		if _, err := encrKeyLen(e.ID, e.Bits); err != nil {
			return err
		}
		aead = aead && isAEAD(e.ID)
	}
	if !aead && len(p.Integrity) == 0 {
		return errors.New("proposal with a non-AEAD cipher needs integrity")
	}
	for _, i := range p.Integrity {
		if _, err := newInteg(i); err != nil {
			return err
		}
	}
	if ike && len(p.PRF) == 0 {
		return errors.New("IKE proposal without PRF")
	}
	for _, f := range p.PRF {
		if _, err := newPRF(f); err != nil {
			return err
		}
	}
	if ike && len(p.Groups) == 0 {
		return errors.New("IKE proposal without KE group")
	}
	for _, g := range p.Groups {
		switch g {
		case wire.GroupX25519, wire.GroupECP256, wire.GroupECP384, wire.GroupMODP2048:
		default:
			return fmt.Errorf("unsupported KE group %d", g)
		}
	}
	return nil
}

// suite is what the gateway chose: one transform of each type.
type suite struct {
	encr    uint16
	keyBits int
	integ   uint16 // 0 with an AEAD
	prf     uint16 // IKE only
	group   uint16 // 0 = none
	esn     bool
}

// saPayload builds the SA payload; withGroups=false leaves out KE transforms
// (the first CHILD_SA, created in IKE_AUTH, never has PFS).
func saPayload(protocol uint8, spi []byte, ps []Proposal, withGroups bool) *wire.SA {
	sa := &wire.SA{}
	for i, p := range ps {
		wp := wire.Proposal{Num: uint8(i + 1), Protocol: protocol, SPI: spi}
		for _, e := range p.Encryption {
			t := wire.Transform{Type: wire.TransformENCR, ID: e.ID}
			if e.Bits != 0 {
				t.Attributes = wire.KeyLen(e.Bits)
			}
			wp.Transforms = append(wp.Transforms, t)
		}
		for _, f := range p.PRF {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformPRF, ID: f})
		}
		for _, in := range p.Integrity {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformINTEG, ID: in})
		}
		if withGroups {
			for _, g := range p.Groups {
				wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformKE, ID: g})
			}
		}
		if protocol == wire.ProtoESP {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformESN, ID: wire.ESNNone})
		}
		sa.Proposals = append(sa.Proposals, wp)
	}
	return sa
}

// chosen checks the responder's SA payload against what we offered (RFC 7296
// §3.3.6: exactly one proposal, one transform of each type, all offered).
func chosen(sa *wire.SA, protocol uint8, offered []Proposal, withGroups bool) (suite, []byte, error) {
	var s suite
	if len(sa.Proposals) != 1 {
		return s, nil, fmt.Errorf("ike: responder returned %d proposals, want 1", len(sa.Proposals))
	}
	p := sa.Proposals[0]
	if p.Protocol != protocol {
		return s, nil, fmt.Errorf("ike: responder chose protocol %d, want %d", p.Protocol, protocol)
	}
	if int(p.Num) < 1 || int(p.Num) > len(offered) {
		return s, nil, fmt.Errorf("ike: responder chose unknown proposal %d", p.Num)
	}
	o := offered[p.Num-1]
	seen := map[uint8]bool{}
	for _, t := range p.Transforms {
		if seen[t.Type] {
			return s, nil, fmt.Errorf("ike: responder chose two transforms of type %d", t.Type)
		}
		seen[t.Type] = true
		ok := false
		switch t.Type {
		case wire.TransformENCR:
			s.encr, s.keyBits = t.ID, t.KeyLength()
			ok = slices.Contains(o.Encryption, Encryption{t.ID, s.keyBits})
		case wire.TransformPRF:
			s.prf, ok = t.ID, slices.Contains(o.PRF, t.ID)
		case wire.TransformINTEG:
			s.integ, ok = t.ID, t.ID == wire.IntegNone || slices.Contains(o.Integrity, t.ID)
		case wire.TransformKE:
			s.group, ok = t.ID, t.ID == 0 || (withGroups && slices.Contains(o.Groups, t.ID))
		case wire.TransformESN:
			s.esn, ok = t.ID == wire.ESNOn, t.ID == wire.ESNNone
		}
		if !ok {
			return s, nil, fmt.Errorf("ike: responder chose transform type %d ID %d that was not offered", t.Type, t.ID)
		}
	}
	if !seen[wire.TransformENCR] {
		return s, nil, errors.New("ike: responder chose no encryption")
	}
	if !isAEAD(s.encr) && s.integ == 0 {
		return s, nil, errors.New("ike: responder chose no integrity with a non-AEAD cipher")
	}
	if isAEAD(s.encr) && s.integ != 0 {
		return s, nil, errors.New("ike: responder chose integrity with an AEAD")
	}
	if protocol == wire.ProtoIKE && (s.prf == 0 || s.group == 0) {
		return s, nil, errors.New("ike: responder chose no PRF or KE group")
	}
	return s, p.SPI, nil
}
