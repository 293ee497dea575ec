package esp

import (
	"encoding/binary"
	"testing"
)

var testSuites = []Suite{
	{Cipher: CipherAESGCM16, KeyBits: 128},
	{Cipher: CipherAESGCM16, KeyBits: 256},
	{Cipher: CipherChaCha20Poly1305, KeyBits: 256},
	{Cipher: CipherAESCBC, KeyBits: 128, Integ: IntegHMACSHA256128},
	{Cipher: CipherAESCBC, KeyBits: 256, Integ: IntegHMACSHA256128},
}

// pair returns an outbound SA and the matching inbound SA.
func pair(t testing.TB, s Suite, esn bool, mod func(*Config)) (out, in *SA) {
	t.Helper()
	el, il := s.KeyLen()
	key, integ := make([]byte, el), make([]byte, il)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	for i := range integ {
		integ[i] = byte(i*3 + 2)
	}
	cfg := Config{SPI: 0x1234, Suite: s, EncKey: key, ESN: esn}
	if il > 0 {
		cfg.IntegKey = integ
	}
	if mod != nil {
		mod(&cfg)
	}
	cfg.Direction = Outbound
	out, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Direction = Inbound
	in, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out, in
}

// ipv4 returns an IPv4 packet of n bytes (n >= 20) with a valid length.
func ipv4(n int, fill byte) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(n))
	p[9] = 17
	copy(p[12:16], []byte{10, 201, 0, 2})
	copy(p[16:20], []byte{10, 200, 0, 53})
	for i := 20; i < n; i++ {
		p[i] = fill + byte(i)
	}
	return p
}

// ipv6 returns an IPv6 packet of n bytes (n >= 40).
func ipv6(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(n-40))
	p[6] = 17
	for i := 40; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

// seal copies payload into a fresh buffer with room and seals it.
func seal(t testing.TB, sa *SA, payload []byte, nh byte) []byte {
	t.Helper()
	buf := make([]byte, MaxHeadroom+len(payload)+MaxTailroom)
	copy(buf[MaxHeadroom:], payload)
	pkt, err := sa.Seal(buf, MaxHeadroom, len(payload), nh)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// drops sums the counters Open increments on failure.
func drops(s Stats) uint64 {
	return s.ReplayDrops + s.AuthFailures + s.DecryptErrors + s.PadErrors + s.DummyDrops + s.LifetimeDrops
}
