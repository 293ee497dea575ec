package esp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// decryptRaw returns the decrypted ESP body (payload ‖ padding ‖ pad length ‖
// next header) of a packet sealed by out, bypassing all checks.
func decryptRaw(t testing.TB, out *SA, pkt []byte) []byte {
	t.Helper()
	pkt = bytes.Clone(pkt)
	tr := out.t
	head := 8 + tr.ivLen
	seq := uint64(binary.BigEndian.Uint32(pkt[4:8]))
	if out.esn {
		seq |= out.seq.Load() &^ 0xffffffff
	}
	if tr.aead != nil {
		var sc [24]byte
		nonce, aad := out.nonceAAD(&sc, pkt[8:head], seq)
		body, err := tr.aead.Open(nil, nonce, pkt[head:], aad)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	body := pkt[head : len(pkt)-tr.icvLen]
	cbcDecrypt(tr, pkt[8:head], body)
	return body
}

// reseal decrypts a packet of out, lets mutate change the body, and
// encrypts it again with a valid ICV, to reach checks behind the ICV.
func reseal(t testing.TB, out *SA, pkt []byte, mutate func(body []byte)) []byte {
	t.Helper()
	body := decryptRaw(t, out, pkt)
	mutate(body)
	return rawSeal(out, pkt[:8+out.t.ivLen], body)
}

// rawSeal builds a packet from a header (SPI ‖ seq ‖ IV) and any body.
func rawSeal(out *SA, hdr, body []byte) []byte {
	tr := out.t
	seq := uint64(binary.BigEndian.Uint32(hdr[4:8]))
	if out.esn {
		seq |= out.seq.Load() &^ 0xffffffff
	}
	pkt := bytes.Clone(hdr)
	if tr.aead != nil {
		var sc [24]byte
		nonce, aad := out.nonceAAD(&sc, hdr[8:], seq)
		return tr.aead.Seal(pkt, nonce, body, aad)
	}
	body = bytes.Clone(body)
	cbcEncrypt(tr, hdr[8:], body)
	pkt = append(pkt, body...)
	m := tr.getMAC()
	pkt = append(pkt, m.icv(pkt, out.esn, seq)...)
	tr.putMAC(m)
	return pkt
}
