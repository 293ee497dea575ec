package ike

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 4868 §2.7.1 PRF test cases 1 and 2 (the RFC 4231 vectors).
func TestPRFVectors(t *testing.T) {
	tests := []struct {
		id        uint16
		key, data string
		want      string
	}{
		{wire.PRFHMACSHA256, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{wire.PRFHMACSHA384, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"},
		{wire.PRFHMACSHA512, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
		{wire.PRFHMACSHA256, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	}
	for _, tc := range tests {
		p, err := newPRF(tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.sum(unhex(t, tc.key), unhex(t, tc.data)); !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("prf %d = %x, want %s", tc.id, got, tc.want)
		}
	}
}

func TestPRFPlus(t *testing.T) {
	p, _ := newPRF(wire.PRFHMACSHA256)
	k, s := []byte("key"), []byte("seed")
	t1 := p.sum(k, s, []byte{1})
	t2 := p.sum(k, t1, s, []byte{2})
	want := append(append([]byte(nil), t1...), t2...)[:50]
	if got := p.plus(k, s, 50); !bytes.Equal(got, want) {
		t.Fatalf("prf+ = %x, want %x", got, want)
	}
}

// RFC 5114 Appendix A.6/A.7 ECDH vectors in the RFC 5903 encoding (x ‖ y,
// shared secret x).
func TestECDHVectors(t *testing.T) {
	tests := []struct {
		group           uint16
		curve           ecdh.Curve
		i, r            string
		pubI, pubR, gir string
	}{
		{wire.GroupECP256, ecdh.P256(),
			"814264145f2f56f2e96a8e337a1284993faf432a5abce59e867b7291d507a3af",
			"2ce1788ec197e096db95a200cc0ab26a19ce6bccad562b8eee1b593761cf7f41",
			"2af502f3be8952f2c9b5a8d4160d09e97165be50bc42ae4a5e8d3b4ba83aeb15eb0faf4ca986c4d38681a0f9872d79d56795bd4bff6e6de3c0f5015ece5efd85",
			"b120de4aa36492795346e8de6c2c8646ae06aaea279fa775b3ab0715f6ce51b09f1b7eece20d7b5ed8ec685fa3f071d83727027092a8411385c34dde5708b2b6",
			"dd0f5396219d1ea393310412d19a08f1f5811e9dc8ec8eea7f80d21c820c2788"},
		{wire.GroupECP384, ecdh.P384(),
			"d27335ea71664af244dd14e9fd1260715dfd8a7965571c48d709ee7a7962a156d706a90cbcb5df2986f05feadb9376f1",
			"52d1791fdb4b70f89c0f00d456c2f7023b6125262c36a7df1f80231121cce3d39be52e00c194a4132c4a6c768bcd94d2",
			"793148f1787634d5da4c6d9074417d05e057ab62f82054d10ee6b0403d6279547e6a8ea9d1fd77427d016fe27a8b8c66c6c41294331d23e6f480f4fb4cd40504c947392e94f4c3f06b8f398bb29e42368f7a685923de3b67baced214a1a1d128",
			"5cd42ab9c41b5347f74b8d4efb708b3d5b36db65915359b44abc17647b6b9999789d72a84865ae2f223f12b5a1abc120e171458feaa939aaa3a8bfac46b404bd8f6d5b348c0fa4d80ceca16356ca933240bde8723415a8ece035b0edf36755de",
			"5ea1fc4af7256d2055981b110575e0a8cae53160137d904c59d926eb1b8456e427aa8a4540884c37de159a58028abc0e"},
	}
	for _, tc := range tests {
		pi, err := tc.curve.NewPrivateKey(unhex(t, tc.i))
		if err != nil {
			t.Fatal(err)
		}
		pr, _ := tc.curve.NewPrivateKey(unhex(t, tc.r))
		ki, kr := &ecdhKex{tc.group, pi}, &ecdhKex{tc.group, pr}
		if !bytes.Equal(ki.public(), unhex(t, tc.pubI)) || !bytes.Equal(kr.public(), unhex(t, tc.pubR)) {
			t.Fatalf("group %d: public values differ", tc.group)
		}
		for _, k := range []struct {
			k    *ecdhKex
			peer string
		}{{ki, tc.pubR}, {kr, tc.pubI}} {
			s, err := k.k.shared(unhex(t, k.peer))
			if err != nil || !bytes.Equal(s, unhex(t, tc.gir)) {
				t.Fatalf("group %d: shared = %x, %v", tc.group, s, err)
			}
		}
		bad := unhex(t, tc.pubR)
		bad[len(bad)-1] ^= 1
		if _, err := ki.shared(bad); err == nil {
			t.Fatalf("group %d: point off the curve accepted", tc.group)
		}
		if _, err := ki.shared(unhex(t, tc.pubR)[1:]); err == nil {
			t.Fatalf("group %d: short public value accepted", tc.group)
		}
	}
}

// RFC 7748 §6.1.
func TestX25519Vector(t *testing.T) {
	a, _ := ecdh.X25519().NewPrivateKey(unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	k := &ecdhKex{wire.GroupX25519, a}
	if !bytes.Equal(k.public(), unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")) {
		t.Fatal("public differs")
	}
	s, err := k.shared(unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
	if err != nil || !bytes.Equal(s, unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")) {
		t.Fatalf("shared = %x, %v", s, err)
	}
	if _, err := k.shared(make([]byte, 32)); err == nil {
		t.Fatal("low-order point accepted")
	}
}

func TestMODP2048(t *testing.T) {
	a, err := newKex(wire.GroupMODP2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newKex(wire.GroupMODP2048, rand.Reader)
	s1, err1 := a.shared(b.public())
	s2, err2 := b.shared(a.public())
	if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) || len(s1) != 256 {
		t.Fatalf("shared secrets differ: %v %v", err1, err2)
	}
	pm1 := new(big.Int).Sub(modp2048, big.NewInt(1)).FillBytes(make([]byte, 256))
	one := big.NewInt(1).FillBytes(make([]byte, 256))
	// 11 is not a quadratic residue mod p, so it lies outside the order-q subgroup.
	eleven := big.NewInt(11).FillBytes(make([]byte, 256))
	for name, v := range map[string][]byte{"p-1": pm1, "1": one, "non-residue": eleven, "short": pm1[1:]} {
		if _, err := a.shared(v); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// RFC 7634 Appendix B: an INFORMATIONAL request (message ID 9) carrying
// N(SET_WINDOW_SIZE=10) in a ChaCha20-Poly1305 SK payload.
func TestRFC7634IKEVector(t *testing.T) {
	key := unhex(t, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3")
	msg := unhex(t, "c0c1c2c3c4c5c6c7d0d1d2d3d4d5d6d72e2025000000000900000045290000291011121314151617"+
		"610394701f8d017f7c129248896b71bfe25236efd7cdc67066906315b2")
	c, err := newSKCipher(wire.EncrChaCha20Poly1305, key, integ{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exchange != wire.Informational || m.MessageID != 9 {
		t.Fatalf("header %+v", m.Header)
	}
	ps, err := openMessage(msg, m, c)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := ps[0].(*wire.Notify)
	if len(ps) != 1 || !ok || n.NotifyType != wire.NotifySetWindowSize || !bytes.Equal(n.Data, []byte{0, 0, 0, 10}) {
		t.Fatalf("payloads %#v", ps)
	}
	msg[len(msg)-1] ^= 1
	if _, err := openMessage(msg, m, c); err != errIntegrity {
		t.Fatalf("tampered ICV: %v", err)
	}
}

func testCiphers(t testing.TB) map[string][2]skCipher {
	in, _ := newInteg(wire.IntegHMACSHA256128)
	out := map[string][2]skCipher{}
	for name, c := range map[string]struct {
		id   uint16
		bits int
	}{"gcm128": {wire.EncrAESGCM16, 128}, "gcm256": {wire.EncrAESGCM16, 256}, "chacha": {wire.EncrChaCha20Poly1305, 0}, "cbc": {wire.EncrAESCBC, 128}} {
		n, _ := encrKeyLen(c.id, c.bits)
		key, ikey := bytes.Repeat([]byte{7}, n), bytes.Repeat([]byte{9}, 32)
		var pair [2]skCipher
		for i := range pair {
			var err error
			if pair[i], err = newSKCipher(c.id, key, in, ikey, rand.Reader); err != nil {
				t.Fatal(err)
			}
		}
		out[name] = pair
	}
	return out
}

func TestSKRoundTrip(t *testing.T) {
	for name, pair := range testCiphers(t) {
		t.Run(name, func(t *testing.T) {
			h := wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.Informational, Flags: wire.FlagInitiator, MessageID: 3}
			ps := []wire.Payload{&wire.Notify{NotifyType: wire.NotifyInitialContact}, &wire.Delete{Protocol: wire.ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}}}}
			b, err := sealMessage(h, ps, pair[0])
			if err != nil {
				t.Fatal(err)
			}
			m, err := wire.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := openMessage(b, m, pair[1])
			if err != nil || len(got) != 2 || got[1].(*wire.Delete).SPIs[0][3] != 4 {
				t.Fatalf("open: %v %#v", err, got)
			}
			b[20] ^= 1 // message ID is authenticated
			m, _ = wire.Parse(b)
			if _, err := openMessage(b, m, pair[1]); err != errIntegrity {
				t.Fatalf("tampered header: %v", err)
			}
		})
	}
}

// FuzzSKOpen feeds arbitrary SK bodies to every cipher: errors, never panics.
func FuzzSKOpen(f *testing.F) {
	cs := testCiphers(f)
	h := wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.Informational, MessageID: 3}
	for _, pair := range cs {
		b, _ := sealMessage(h, []wire.Payload{&wire.Notify{NotifyType: wire.NotifyCookie}}, pair[0])
		f.Add(b)
	}
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := wire.Parse(in)
		if err != nil {
			return
		}
		for _, pair := range cs {
			openMessage(in, m, pair[1])
		}
	})
}
