package esp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// macState is a pooled HMAC-SHA-256 with its output scratch, so computing an
// ICV allocates nothing.
type macState struct {
	h   hash.Hash
	sum [32]byte
	hi  [4]byte
}

func (t *transform) getMAC() *macState {
	if v := t.hmacs.Get(); v != nil {
		m := v.(*macState)
		m.h.Reset()
		return m
	}
	return &macState{h: hmac.New(sha256.New, t.integ)}
}

func (t *transform) putMAC(m *macState) { t.hmacs.Put(m) }

// icv returns the 16-byte HMAC-SHA-256-128 ICV (RFC 4868) over the ESP
// header, IV and ciphertext; with ESN, seq_hi is appended to the input but
// not sent (RFC 4303 §2.2.1, §3.3.2.1).
func (m *macState) icv(authed []byte, esn bool, seq uint64) []byte {
	m.h.Write(authed)
	if esn {
		binary.BigEndian.PutUint32(m.hi[:], uint32(seq>>32))
		m.h.Write(m.hi[:])
	}
	return m.h.Sum(m.sum[:0])[:16]
}
