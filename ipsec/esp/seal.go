package esp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
)

// Seal encrypts, in place, the payload buf[off:off+n] (an inner IPv4 or IPv6
// packet) with the given next header (4 or 41; 59 for a dummy packet) and
// returns the ESP packet, a sub-slice of buf starting at off-head. buf must
// have off >= head and cap(buf) >= off+n+tail, with (head, tail) from
// Overhead, or MaxHeadroom and MaxTailroom for any SA.
//
// The sequence number comes from the SA (RFC 4303 §3.3.3), so is the IV of
// AEAD suites (RFC 4106 §3.1, RFC 7634 §2); CBC IVs are random. Seal fails with ErrExpired once
// a hard limit, including sequence exhaustion, has passed.
func (s *SA) Seal(buf []byte, off, n int, nextHeader byte) ([]byte, error) {
	if s.dir != Outbound {
		return nil, ErrDirection
	}
	head, tail := s.Overhead()
	if off < head || n < 0 || off+n+tail > cap(buf) {
		return nil, ErrBuffer
	}
	if s.hardFired.Load() {
		s.lt.Add(1)
		return nil, ErrExpired
	}
	seq := s.seq.Add(1)
	if !s.seqLimits(seq) {
		s.lt.Add(1)
		return nil, ErrExpired
	}
	t := s.t
	// RFC 4303 §2.4: payload ‖ padding ‖ pad length ‖ next header fills the
	// cipher block and 4-aligns the ICV; padding bytes are 1, 2, 3, …
	padLen := (t.blk - (n+2)%t.blk) % t.blk
	body := buf[off : off+n+padLen+2 : cap(buf)]
	for i := range padLen {
		body[n+i] = byte(i + 1)
	}
	body[n+padLen] = byte(padLen)
	body[n+padLen+1] = nextHeader

	pkt := buf[off-head : off+len(body)+t.icvLen]
	binary.BigEndian.PutUint32(pkt[0:4], s.spi)
	binary.BigEndian.PutUint32(pkt[4:8], uint32(seq))
	iv := pkt[8:head]

	if t.aead != nil {
		binary.BigEndian.PutUint64(iv, seq)
		sc := s.aeadBuf.Get().(*[24]byte)
		nonce, aad := s.nonceAAD(sc, iv, seq)
		t.aead.Seal(body[:0], nonce, body, aad)
		s.aeadBuf.Put(sc)
	} else {
		// RFC 3602 §2.3: a random, unpredictable IV per packet.
		rand.Read(iv)
		cbcEncrypt(t, iv, body)
		if t.icvLen > 0 {
			m := t.getMAC()
			sum := m.icv(pkt[:head+len(body)], s.esn, seq)
			copy(pkt[head+len(body):], sum)
			t.putMAC(m)
		}
	}
	s.account(n)
	return pkt, nil
}

// nonceAAD fills scratch with salt ‖ IV and the AAD: SPI ‖ seq (8 bytes), or
// SPI ‖ seq_hi ‖ seq_lo with ESN (RFC 4106 §5, RFC 7634 §2.1).
func (s *SA) nonceAAD(sc *[24]byte, iv []byte, seq uint64) (nonce, aad []byte) {
	copy(sc[0:4], s.t.salt[:])
	copy(sc[4:12], iv)
	binary.BigEndian.PutUint32(sc[12:16], s.spi)
	if s.esn {
		binary.BigEndian.PutUint64(sc[16:24], seq)
		return sc[0:12], sc[12:24]
	}
	binary.BigEndian.PutUint32(sc[16:20], uint32(seq))
	return sc[0:12], sc[12:20]
}

func cbcEncrypt(t *transform, iv, body []byte) {
	prev := iv
	for i := 0; i < len(body); i += 16 {
		b := body[i : i+16]
		subtle.XORBytes(b, b, prev)
		t.block.Encrypt(b, b)
		prev = b
	}
}

// cbcDecrypt decrypts in place, walking backwards so each block's
// predecessor is still ciphertext when it is needed.
func cbcDecrypt(t *transform, iv, body []byte) {
	for i := len(body) - 16; i >= 0; i -= 16 {
		b := body[i : i+16]
		t.block.Decrypt(b, b)
		if i == 0 {
			subtle.XORBytes(b, b, iv)
		} else {
			subtle.XORBytes(b, b, body[i-16:i])
		}
	}
}
