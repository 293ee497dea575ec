package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Cipher is an IKEv2 ENCR transform ID (IANA "Transform Type 1"), so the
// keying layer can use negotiated values directly.
type Cipher uint16

// Ciphers supported for ESP.
const (
	CipherAESCBC           Cipher = 12 // RFC 3602; needs IntegHMACSHA256
	CipherAESGCM16         Cipher = 20 // RFC 4106, 16-byte ICV
	CipherChaCha20Poly1305 Cipher = 28 // RFC 7634
)

// Integ is an IKEv2 INTEG transform ID (IANA "Transform Type 3").
type Integ uint16

// Integrity algorithms; AEAD ciphers use IntegNone.
const (
	IntegNone          Integ = 0
	IntegHMACSHA256128 Integ = 12 // RFC 4868
)

// Suite names a cipher, its key size and the integrity algorithm.
type Suite struct {
	Cipher  Cipher
	KeyBits int // 128 or 256 for AES; ignored (256) for ChaCha20-Poly1305
	Integ   Integ
}

// ParseSuite accepts strongSwan-style names: "aes128gcm16", "aes256gcm16",
// "chacha20poly1305", "aes128-sha256", "aes256-sha256".
func ParseSuite(name string) (Suite, error) {
	switch strings.ToLower(name) {
	case "aes128gcm16", "aes128gcm":
		return Suite{Cipher: CipherAESGCM16, KeyBits: 128}, nil
	case "aes256gcm16", "aes256gcm":
		return Suite{Cipher: CipherAESGCM16, KeyBits: 256}, nil
	case "chacha20poly1305":
		return Suite{Cipher: CipherChaCha20Poly1305, KeyBits: 256}, nil
	case "aes128-sha256", "aes128-sha2_256":
		return Suite{Cipher: CipherAESCBC, KeyBits: 128, Integ: IntegHMACSHA256128}, nil
	case "aes256-sha256", "aes256-sha2_256":
		return Suite{Cipher: CipherAESCBC, KeyBits: 256, Integ: IntegHMACSHA256128}, nil
	}
	return Suite{}, fmt.Errorf("esp: unknown suite %q", name)
}

// String returns the strongSwan-style name accepted by ParseSuite.
func (s Suite) String() string {
	switch s.Cipher {
	case CipherAESGCM16:
		return fmt.Sprintf("aes%dgcm16", s.KeyBits)
	case CipherChaCha20Poly1305:
		return "chacha20poly1305"
	case CipherAESCBC:
		return fmt.Sprintf("aes%d-sha256", s.KeyBits)
	}
	return fmt.Sprintf("cipher%d-integ%d", s.Cipher, s.Integ)
}

// AEAD reports whether the suite is a combined-mode cipher.
func (s Suite) AEAD() bool { return s.Cipher != CipherAESCBC }

// KeyLen returns the KEYMAT bytes the suite takes per direction (RFC 7296
// §2.17): the encryption key including the 4-byte salt of AEAD ciphers
// (RFC 4106 §8.1, RFC 7634 §4), and the integrity key.
func (s Suite) KeyLen() (encr, integ int) {
	switch s.Cipher {
	case CipherAESGCM16:
		return s.KeyBits/8 + 4, 0
	case CipherChaCha20Poly1305:
		return 32 + 4, 0
	case CipherAESCBC:
		return s.KeyBits / 8, 32
	}
	return 0, 0
}

func (s Suite) validate(allowNoInteg bool) error {
	switch s.Cipher {
	case CipherAESGCM16:
		if s.KeyBits != 128 && s.KeyBits != 256 {
			return fmt.Errorf("esp: AES-GCM key size %d not supported", s.KeyBits)
		}
	case CipherChaCha20Poly1305:
	case CipherAESCBC:
		if s.KeyBits != 128 && s.KeyBits != 256 {
			return fmt.Errorf("esp: AES-CBC key size %d not supported", s.KeyBits)
		}
		// RFC 8221 §5: a non-AEAD cipher MUST have integrity protection.
		if s.Integ != IntegHMACSHA256128 && !(allowNoInteg && s.Integ == IntegNone) {
			return fmt.Errorf("esp: AES-CBC needs HMAC-SHA2-256-128, got integ %d", s.Integ)
		}
		return nil
	default:
		return fmt.Errorf("esp: cipher %d not supported", s.Cipher)
	}
	if s.Integ != IntegNone {
		return fmt.Errorf("esp: AEAD cipher %s must not have integ %d", s, s.Integ)
	}
	return nil
}

// transform holds the keyed primitives of one SA; all are safe for
// concurrent use (hmac states come from a pool).
type transform struct {
	hmacs  sync.Pool   // of *macState
	aead   cipher.AEAD // GCM or ChaCha20-Poly1305
	salt   [4]byte
	block  cipher.Block // AES-CBC
	integ  []byte       // HMAC key
	ivLen  int
	icvLen int
	blk    int // cipher block size for padding (4 for AEADs)
}

func newTransform(s Suite, encKey, integKey []byte) (*transform, error) {
	encLen, integLen := s.KeyLen()
	if len(encKey) != encLen {
		return nil, fmt.Errorf("esp: %s takes a %d-byte encryption key, got %d", s, encLen, len(encKey))
	}
	if s.Integ != IntegNone && len(integKey) != integLen {
		return nil, fmt.Errorf("esp: %s takes a %d-byte integrity key, got %d", s, integLen, len(integKey))
	}
	t := &transform{ivLen: 8, icvLen: 16, blk: 4}
	var err error
	switch s.Cipher {
	case CipherAESGCM16:
		k := encKey[:len(encKey)-4]
		copy(t.salt[:], encKey[len(k):])
		b, e := aes.NewCipher(k)
		if e != nil {
			return nil, e
		}
		t.aead, err = cipher.NewGCM(b)
	case CipherChaCha20Poly1305:
		copy(t.salt[:], encKey[32:])
		t.aead, err = chacha20poly1305.New(encKey[:32])
	case CipherAESCBC:
		t.ivLen, t.blk = aes.BlockSize, aes.BlockSize
		if t.block, err = aes.NewCipher(encKey); err != nil {
			return nil, err
		}
		if s.Integ == IntegNone {
			t.icvLen = 0
		} else {
			t.integ = append([]byte(nil), integKey...)
		}
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}
