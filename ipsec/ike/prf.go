package ike

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// prf is an IKE pseudo-random function (RFC 7296 §2.13); only the HMAC-SHA2
// family is offered (RFC 4868).
type prf struct {
	id   uint16
	hash func() hash.Hash
	size int
}

func newPRF(id uint16) (prf, error) {
	switch id {
	case wire.PRFHMACSHA256:
		return prf{id, sha256.New, 32}, nil
	case wire.PRFHMACSHA384:
		return prf{id, sha512.New384, 48}, nil
	case wire.PRFHMACSHA512:
		return prf{id, sha512.New, 64}, nil
	}
	return prf{}, fmt.Errorf("ike: unsupported PRF %d", id)
}

// sum returns prf(key, data[0] ‖ data[1] ‖ …).
func (p prf) sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.hash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// plus is prf+ (RFC 7296 §2.13): T1 ‖ T2 ‖ … truncated to n bytes, where
// Ti = prf(K, Ti-1 ‖ S ‖ i).
func (p prf) plus(key, seed []byte, n int) []byte {
	out := make([]byte, 0, n+p.size)
	var t []byte
	m := hmac.New(p.hash, key)
	for i := 1; len(out) < n; i++ {
		if i > 255 {
			panic("ike: prf+ asked for more than 255 blocks")
		}
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n]
}

// integ describes an integrity algorithm: key length and truncated ICV length.
type integ struct {
	id     uint16
	hash   func() hash.Hash
	keyLen int
	icvLen int
}

func newInteg(id uint16) (integ, error) {
	switch id {
	case wire.IntegHMACSHA256128:
		return integ{id, sha256.New, 32, 16}, nil
	case wire.IntegHMACSHA384192:
		return integ{id, sha512.New384, 48, 24}, nil
	case wire.IntegHMACSHA512256:
		return integ{id, sha512.New, 64, 32}, nil
	}
	return integ{}, fmt.Errorf("ike: unsupported integrity algorithm %d", id)
}
