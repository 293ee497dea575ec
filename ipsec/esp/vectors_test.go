package esp

import (
	"bytes"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openVector opens a published ESP packet with an inbound SA whose window
// already reached seq-1, as if the SA had carried the earlier traffic.
type openVector struct {
	name       string
	suite      Suite
	key, integ string // key includes the salt for AEADs
	esn        bool
	seq        uint64 // full 64-bit sequence number of the packet
	packet     string // SPI ‖ seq ‖ IV ‖ ciphertext ‖ ICV
	payload    string // decrypted payload without the ESP trailer
	nh         byte
}

var (
	gcm128 = Suite{Cipher: CipherAESGCM16, KeyBits: 128}
	gcm256 = Suite{Cipher: CipherAESGCM16, KeyBits: 256}
	chacha = Suite{Cipher: CipherChaCha20Poly1305, KeyBits: 256}
	cbc128 = Suite{Cipher: CipherAESCBC, KeyBits: 128} // RFC 3602 packets carry no ICV
)

var openVectors = []openVector{
	{
		name:  "RFC 7634 App. A ChaCha20-Poly1305 tunnel packet",
		suite: chacha, key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3",
		seq: 5,
		packet: "01020304 00000005 1011121314151617" +
			"24039428b97f417e3c13753a4f05087b67c352e6a7fab1b982d466ef407ae5c614ee8099d52844eb61aa95dfab4c02f7" +
			"2aa71e7c4c4f64c9befe2facc638e8f3cbec163fac469b502773f6fb94e664da9165b82829f641e0" +
			"76aaa8266b7fb0f7b11b369907e1ad43",
		payload: "45000054a6f200004001e778c6336405c000020508005b7a3a080000553bec100007362708090a0b0c0d0e0f" +
			"101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
		nh: 4,
	},
	// draft-mcgrew-gcm-test-01 §4 (its packets use next header 1).
	{
		name: "GCM test case 2 (ESN)", suite: gcm128, key: "4c80cdefbb5d10da906ac73c3613a634 2e443b68",
		esn: true, seq: 0x8765432100000000,
		packet: "00004321 00000000 4956ed7e3b244cfe" +
			"fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65925bf1f4a13c5d" +
			"15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732" + "459018148f6cbe722fd04796562dfdb4",
		payload: "45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f75647003" +
			"7369700963796265726369747902646b0000210001",
		nh: 1,
	},
	{
		name: "GCM test case 3 (ESN)", suite: gcm128, key: "3de09874b388e6491988d0c3607eae1f 57690e43",
		esn: true, seq: 0x1010101010101010,
		packet: "42f67e3f 10101010 4e280000a2fca1a3" +
			"fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c35791765acbd8701ad79845bf9fe3fba487bc9" +
			"1755e6662b4c8d0d" + "1f5e22739530320ae0d731cc978ecafaeae88f00e80d6e48",
		payload: "4500003c99c300008001cb7c40679318010101010800085c0200430061626364" +
			"65666768696a6b6c6d6e6f70717273747576776162636465666768 69",
		nh: 1,
	},
	{
		name: "GCM test case 4 (ESN, small)", suite: gcm128, key: "3de09874b388e6491988d0c3607eae1f 57690e43",
		esn: true, seq: 0x1010101010101010,
		packet: "42f67e3f 10101010 4e280000a2fca1a3" +
			"fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed" + "369f071f35e034be95f112e4e7d05d35",
		payload: "4500001c42a200008001441f406793b6e00000020a00f5ff",
		nh:      1,
	},
	{
		name: "GCM test case 5 (ESN)", suite: gcm128, key: "abbccddef00112233445566778899aab decaf888",
		esn: true, seq: 1,
		packet: "00000100 00000001 cafedebaceface74" +
			"18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f9190feebaf2cb01984e65863965d7472" +
			"b79da345e0e780191f0d2f0e0f496c226f2127b27db35724e7845d68" + "651f57e65f354f75ff17015769623436",
		payload: "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d500004e20001e8c18d75b81dc91baa047" +
			"6b91b924b280389d92c963bac046ec959b6266c04722b14923",
		nh: 1,
	},
	{
		name: "GCM test case 8 (ESN)", suite: gcm128, key: "4c80cdefbb5d10da906ac73c3613a634 22433c64",
		esn: true, seq: 0x8765432100000007,
		packet: "00004321 00000007 4855ec7d3a234bfd" +
			"74752e8aeb5d873cd7c0f4acc36c4bff84b7d7b98f0ca8b6acda6894bc619069" + "ef9cbc28fe1b56a7c4e0d58c86cd2bc0",
		payload: "0800c6cd020007006162636465666768696a6b6c6d6e6f7071727374",
		nh:      1,
	},
	{
		name: "GCM test case 9 (256-bit, ESN)", suite: gcm256,
		key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab 73616c74",
		esn: true, seq: 0x156f3126dd0db99b,
		packet: "17405e67 dd0db99b 616e640169766563" +
			"f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e" +
			"451626c2415771e3b7eebca614c89b35",
		payload: "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d54",
		nh:      1,
	},
	{
		name: "GCM test case 10 (256-bit, ESN)", suite: gcm256,
		key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab 73616c74",
		esn: true, seq: 0x156f3126dd0db99b,
		packet: "17405e67 dd0db99b 616e640169766563" +
			"d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18d0a6df10e5487df074113e14c641024e" +
			"3e6773d91a62ee429b043a10e3efe6b012a49363412364f8" + "c0cac587f249e56b11e24f30e44ccc76",
		payload: "636973636f0172756c65730174686501" + "6e6574776501646566696e6501746865" +
			"746563686e6f6c6f6769657301746861" + "7477696c6c01646566696e65746f6d6f" + "72726f77",
		nh: 1,
	},
	{
		name: "GCM test case 11 (seq 2^64-1)", suite: gcm256,
		key: "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961 7475726e",
		esn: true, seq: 0xffffffffffffffff,
		packet: "796b6963 ffffffff 333021696765746d" +
			"f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b42458fb57dbe82" +
			"1dcc63b9" + "d0937ba2945f669368661a329fb4c053",
		payload: "45000030da3a00008001df3bc0a80005c0a800010800c6cd02000700616263646566676869" +
			"6a6b6c6d6e6f7071727374",
		nh: 1,
	},
	// RFC 3602 §4 cases 5-8: AES-CBC ESP packets without an ICV.
	{
		name: "RFC 3602 case 5", suite: cbc128, key: "90d382b410eeba7ad938c46cec1a82bf", seq: 1,
		packet: "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849a4870b66cc6b" +
			"9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874aa269add047" +
			"ad2d5913ac19b7cfbad4a6",
		payload: "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425" +
			"262728292a2b2c2d2e2f3031323334353637",
		nh: 1,
	},
	{
		name: "RFC 3602 case 6", suite: cbc128, key: "90d382b410eeba7ad938c46cec1a82bf", seq: 8,
		packet:  "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75",
		payload: "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
		nh:      1,
	},
	{
		name: "RFC 3602 case 7 (tunnel)", suite: cbc128, key: "0123456789abcdef0123456789abcdef", seq: 2,
		packet: "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93" +
			"013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5c177f132ad3f" +
			"bfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
		payload: "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b0c0d0e0f1011" +
			"12131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
		nh: 4,
	},
	{
		name: "RFC 3602 case 8 (tunnel)", suite: cbc128, key: "0123456789abcdef0123456789abcdef", seq: 5,
		packet: "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048fe45318e11f8a0f" +
			"62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3d2726d9b5ef6" +
			"affc6d17a0decbb13892",
		payload: "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffffffffffffffff" +
			"ffffffffffffffffffffffffffffffffffffffffffff",
		nh: 4,
	},
}

func TestOpenVectors(t *testing.T) {
	for _, v := range openVectors {
		t.Run(v.name, func(t *testing.T) {
			pkt := unhex(t, v.packet)
			spi, _ := SPIOf(pkt)
			sa, err := newSA(Config{SPI: spi, Direction: Inbound, Suite: v.suite, EncKey: unhex(t, v.key),
				IntegKey: unhex(t, v.integ), ESN: v.esn}, true)
			if err != nil {
				t.Fatal(err)
			}
			sa.win.top = v.seq - 1
			got, nh, err := sa.Open(bytes.Clone(pkt))
			if err != nil {
				t.Fatalf("Open: %v (stats %+v)", err, sa.Stats())
			}
			if want := unhex(t, v.payload); !bytes.Equal(got, want) || nh != v.nh {
				t.Fatalf("Open = nh %d %x\nwant nh %d %x", nh, got, v.nh, want)
			}
			if sa.Stats().Seq != v.seq {
				t.Fatalf("window top %#x, want %#x", sa.Stats().Seq, v.seq)
			}
			// The same packet again is a replay, refused before decryption.
			if _, _, err := sa.Open(bytes.Clone(pkt)); err != ErrReplay {
				t.Fatalf("replayed Open = %v, want ErrReplay", err)
			}
			// One flipped ciphertext bit fails the ICV (the CBC vectors have none).
			if v.suite.AEAD() {
				sa.win.top = v.seq - 1
				sa.win.blocks = make([]uint64, len(sa.win.blocks))
				bad := bytes.Clone(pkt)
				bad[20] ^= 1
				if _, _, err := sa.Open(bad); err != ErrAuth {
					t.Fatalf("tampered Open = %v, want ErrAuth", err)
				}
			}
		})
	}
}

// RFC 3602 §4 cases 1-2: raw AES-CBC, through the in-place CBC used by Seal
// and Open.
func TestRFC3602CBC(t *testing.T) {
	cases := []struct{ key, iv, plain, cipher string }{
		{"06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
			hex.EncodeToString([]byte("Single block msg")), "e353779c1079aeb82708942dbe77181a"},
		{"c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
			"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			"d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"},
	}
	for i, c := range cases {
		tr, err := newTransform(cbc128, unhex(t, c.key), nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := unhex(t, c.plain)
		cbcEncrypt(tr, unhex(t, c.iv), buf)
		if want := unhex(t, c.cipher); !bytes.Equal(buf, want) {
			t.Fatalf("case %d: encrypt %x, want %x", i+1, buf, want)
		}
		cbcDecrypt(tr, unhex(t, c.iv), buf)
		if want := unhex(t, c.plain); !bytes.Equal(buf, want) {
			t.Fatalf("case %d: decrypt %x, want %x", i+1, buf, want)
		}
	}
}

// RFC 4868 §2.7.2.1: HMAC-SHA-256 with 32-byte keys, truncated to 128 bits
// as the ESP ICV.
func TestRFC4868ICV(t *testing.T) {
	cases := []struct{ key, data, icv string }{
		{strings.Repeat("0b", 32), hex.EncodeToString([]byte("Hi There")), "198a607eb44bfbc69903a0f1cf2bbdc5"},
		{hex.EncodeToString([]byte(strings.Repeat("Jefe", 8))), hex.EncodeToString([]byte("what do ya want for nothing?")),
			"167f928588c5cc2eef8e3093caa0e87c"},
		{strings.Repeat("aa", 32), strings.Repeat("dd", 50), "cdcb1220d1ecccea91e53aba3092f962"},
	}
	tr, _ := newTransform(cbc128, make([]byte, 16), nil)
	for i, c := range cases {
		tr.integ = unhex(t, c.key)
		tr.hmacs = sync.Pool{}
		m := tr.getMAC()
		if got := m.icv(unhex(t, c.data), false, 0); hex.EncodeToString(got) != c.icv {
			t.Fatalf("AUTH256-%d: %x, want %s", i+1, got, c.icv)
		}
	}
}
