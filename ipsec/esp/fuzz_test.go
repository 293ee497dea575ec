package esp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fuzzSAs are inbound SAs for every suite, with and without ESN, plus the
// outbound SAs that make the seeds.
func fuzzSAs(t testing.TB) (outs, ins []*SA) {
	for _, s := range testSuites {
		for _, esn := range []bool{false, true} {
			o, i := pair(t, s, esn, nil)
			outs, ins = append(outs, o), append(ins, i)
		}
	}
	return outs, ins
}

// checkOpen opens data and checks the contract: no panic, success returns a
// sub-slice of the input, and every failure is counted exactly once.
func checkOpen(t *testing.T, in *SA, data []byte) {
	before := drops(in.Stats())
	pkt := bytes.Clone(data)
	payload, _, err := in.Open(pkt)
	after := drops(in.Stats())
	if err != nil {
		if after != before+1 {
			t.Fatalf("error %v counted %d times", err, after-before)
		}
		return
	}
	if after != before {
		t.Fatalf("success counted as a drop")
	}
	if len(payload) > 0 && (len(payload) > len(pkt) || &payload[0] != &pkt[8+in.t.ivLen]) {
		t.Fatalf("payload is not the decrypted body in place")
	}
}

// FuzzOpen feeds arbitrary packets to every inbound SA: random bytes,
// truncations, wrong SPIs, bad ICVs.
func FuzzOpen(f *testing.F) {
	outs, ins := fuzzSAs(f)
	for i, o := range outs {
		pkt := seal(f, o, ipv4(60, byte(i)), NextHeaderIPv4)
		f.Add(uint8(i), pkt)
		f.Add(uint8(i), pkt[:len(pkt)-1])
		f.Add(uint8(i), pkt[:9])
		bad := bytes.Clone(pkt)
		bad[len(bad)-1] ^= 1
		f.Add(uint8(i), bad)
		spi := bytes.Clone(pkt)
		spi[0] ^= 0x80
		f.Add(uint8(i), spi)
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{0xff})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		in := ins[int(which)%len(ins)]
		if len(data) >= 4 {
			binary.BigEndian.PutUint32(data, in.spi) // reach past the SPI check most of the time
			if which&0x80 != 0 {
				data[0] ^= 1
			}
		}
		checkOpen(t, in, data)
	})
}

// FuzzOpenBody seals arbitrary bodies with a valid ICV, reaching the
// padding, next header and inner-length checks behind the ICV.
func FuzzOpenBody(f *testing.F) {
	outs, ins := fuzzSAs(f)
	f.Add(uint8(0), append(ipv4(30, 0), 1, 2, 2, 4))
	f.Add(uint8(2), append(ipv4(30, 0), 1, 2, 3, 3, 4))
	f.Add(uint8(4), []byte{0, 59})
	f.Add(uint8(6), append(ipv6(48), 0, 41))
	f.Add(uint8(7), append(ipv4(26, 0), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 14, 4))
	f.Add(uint8(3), []byte{1, 2, 3, 7, 4})
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		i := int(which) % len(ins)
		out, in := outs[i], ins[i]
		if len(body) < 2 {
			return
		}
		if out.t.block != nil {
			body = body[:len(body)&^15]
			if len(body) == 0 {
				return
			}
		}
		seq := out.seq.Add(1)
		hdr := make([]byte, 8+out.t.ivLen)
		binary.BigEndian.PutUint32(hdr, out.spi)
		binary.BigEndian.PutUint32(hdr[4:], uint32(seq))
		binary.BigEndian.PutUint64(hdr[8:], seq)
		checkOpen(t, in, rawSeal(out, hdr, body))
	})
}
