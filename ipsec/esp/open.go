package esp

import (
	"crypto/subtle"
	"encoding/binary"
)

// IP protocol numbers ESP carries in tunnel mode.
const (
	NextHeaderIPv4  = 4
	NextHeaderIPv6  = 41
	NextHeaderDummy = 59
)

// SPIOf returns the SPI of an ESP packet, or false when it is too short.
func SPIOf(pkt []byte) (uint32, bool) {
	if len(pkt) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint32(pkt), true
}

// Open verifies and decrypts the ESP packet pkt in place and returns its
// payload (a sub-slice of pkt) and next header. The anti-replay window is
// checked before decryption and updated only after the ICV verified
// (RFC 4303 §3.4.3). For next header 4 and 41 the payload is cut to the inner
// IP length, dropping TFC padding (RFC 4303 §2.7); a dummy packet (59)
// returns ErrDummy. Other next headers are returned untouched.
//
// Every error is a dropped packet counted in Stats; pkt is clobbered.
func (s *SA) Open(pkt []byte) (payload []byte, nextHeader byte, err error) {
	if s.dir != Inbound {
		return nil, 0, ErrDirection
	}
	t := s.t
	head := 8 + t.ivLen
	// Smallest body: pad length and next header (a whole block for CBC).
	minBody := 2
	if t.block != nil {
		minBody = t.blk
	}
	if len(pkt) < head+minBody+t.icvLen {
		s.decrypt.Add(1)
		return nil, 0, ErrMalformed
	}
	body := pkt[head : len(pkt)-t.icvLen]
	// Senders 4-align AEAD bodies (RFC 4303 §2.4), but nothing depends on
	// it here, so only CBC's whole blocks are enforced.
	if t.block != nil && len(body)%t.blk != 0 {
		s.decrypt.Add(1)
		return nil, 0, ErrMalformed
	}
	if binary.BigEndian.Uint32(pkt) != s.spi {
		s.decrypt.Add(1)
		return nil, 0, ErrSPI
	}
	if s.hardFired.Load() {
		s.lt.Add(1)
		return nil, 0, ErrExpired
	}
	lo := binary.BigEndian.Uint32(pkt[4:8])
	seq := uint64(lo)
	ok := true
	s.mu.Lock()
	if s.esn {
		seq, ok = s.win.inferESN(lo)
	}
	ok = ok && s.win.check(seq)
	s.mu.Unlock()
	if !ok {
		s.replay.Add(1)
		return nil, 0, ErrReplay
	}

	iv := pkt[8:head]
	if t.aead != nil {
		sc := s.aeadBuf.Get().(*[24]byte)
		nonce, aad := s.nonceAAD(sc, iv, seq)
		_, err = t.aead.Open(body[:0], nonce, pkt[head:], aad)
		s.aeadBuf.Put(sc)
	} else {
		if t.icvLen > 0 {
			m := t.getMAC()
			sum := m.icv(pkt[:len(pkt)-t.icvLen], s.esn, seq)
			if subtle.ConstantTimeCompare(sum, pkt[len(pkt)-t.icvLen:]) != 1 {
				err = ErrAuth
			}
			t.putMAC(m)
		}
		if err == nil {
			cbcDecrypt(t, iv, body)
		}
	}
	if err != nil {
		s.auth.Add(1)
		return nil, 0, ErrAuth
	}

	s.mu.Lock()
	ok = s.win.update(seq)
	s.mu.Unlock()
	if !ok {
		s.replay.Add(1) // a concurrent Open accepted the same number first
		return nil, 0, ErrReplay
	}

	padLen := int(body[len(body)-2])
	nextHeader = body[len(body)-1]
	if padLen+2 > len(body) {
		s.pad.Add(1)
		return nil, 0, ErrPadding
	}
	payload = body[:len(body)-2-padLen]
	for i, b := range body[len(payload) : len(body)-2] {
		if b != byte(i+1) {
			s.pad.Add(1)
			return nil, 0, ErrPadding
		}
	}
	s.account(len(payload))
	switch nextHeader {
	case NextHeaderDummy:
		s.dummy.Add(1)
		return nil, nextHeader, ErrDummy
	case NextHeaderIPv4, NextHeaderIPv6:
		n, ok := innerLen(payload, nextHeader)
		if !ok {
			s.decrypt.Add(1)
			return nil, 0, ErrMalformed
		}
		payload = payload[:n]
	}
	return payload, nextHeader, nil
}

// innerLen returns the length the inner IP header claims, which must fit in
// the payload; anything after it is TFC padding.
func innerLen(p []byte, nh byte) (int, bool) {
	if nh == NextHeaderIPv4 {
		if len(p) < 20 || p[0]>>4 != 4 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint16(p[2:4]))
		return n, n >= 20 && n <= len(p)
	}
	if len(p) < 40 || p[0]>>4 != 6 {
		return 0, false
	}
	n := 40 + int(binary.BigEndian.Uint16(p[4:6]))
	return n, n <= len(p)
}
