package ike

import (
	"encoding/binary"
	"io"
)

// ikeKeys holds one IKE SA's key material as seen by us, the original
// initiator or (after a gateway-initiated rekey) the original responder.
type ikeKeys struct {
	prf     prf
	d       []byte
	pLocal  []byte // SK_pi when we are the original initiator
	pRemote []byte
	out, in skCipher
}

// deriveIKE computes SK_d … SK_pr from SKEYSEED (RFC 7296 §2.14) for suite
// s. weInitiated says whether we are the initiator of this IKE SA (the one
// whose SPI is SPIi).
func deriveIKE(s suite, skeyseed, ni, nr []byte, spii, spir uint64, weInitiated bool, rand io.Reader) (*ikeKeys, error) {
	p, err := newPRF(s.prf)
	if err != nil {
		return nil, err
	}
	ekl, err := encrKeyLen(s.encr, s.keyBits)
	if err != nil {
		return nil, err
	}
	var in integ
	if s.integ != 0 {
		if in, err = newInteg(s.integ); err != nil {
			return nil, err
		}
	}
	seed := make([]byte, 0, len(ni)+len(nr)+16)
	seed = append(append(seed, ni...), nr...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	km := p.plus(skeyseed, seed, 3*p.size+2*in.keyLen+2*ekl)
	take := func(n int) []byte { b := km[:n:n]; km = km[n:]; return b }
	k := &ikeKeys{prf: p, d: take(p.size)}
	ai, ar := take(in.keyLen), take(in.keyLen)
	ei, er := take(ekl), take(ekl)
	pi, pr := take(p.size), take(p.size)
	if !weInitiated {
		ai, ar, ei, er, pi, pr = ar, ai, er, ei, pr, pi
	}
	k.pLocal, k.pRemote = pi, pr
	if k.out, err = newSKCipher(s.encr, ei, in, ai, rand); err != nil {
		return nil, err
	}
	if k.in, err = newSKCipher(s.encr, er, in, ar, rand); err != nil {
		return nil, err
	}
	return k, nil
}

// childKeys is KEYMAT for one CHILD_SA (RFC 7296 §2.17), split into the
// initiator→responder and responder→initiator halves of that exchange.
type childKeys struct {
	encrI, integI, encrR, integR []byte
}

func deriveChild(p prf, skd, gir, ni, nr []byte, s suite) (childKeys, error) {
	ekl, err := encrKeyLen(s.encr, s.keyBits)
	if err != nil {
		return childKeys{}, err
	}
	ikl := 0
	if s.integ != 0 {
		in, err := newInteg(s.integ)
		if err != nil {
			return childKeys{}, err
		}
		ikl = in.keyLen
	}
	seed := append(append(append([]byte(nil), gir...), ni...), nr...)
	km := p.plus(skd, seed, 2*ekl+2*ikl)
	return childKeys{
		encrI: km[:ekl], integI: km[ekl : ekl+ikl],
		encrR: km[ekl+ikl : 2*ekl+ikl], integR: km[2*ekl+ikl:],
	}, nil
}
