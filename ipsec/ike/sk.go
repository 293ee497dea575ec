package ike

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// errIntegrity reports an SK payload whose ICV does not verify.
var errIntegrity = errors.New("ike: SK payload integrity check failed")

// skCipher protects the body of an SK or SKF payload (RFC 7296 §3.14,
// RFC 5282 for AEADs). The body starts at bodyOff in the marshalled
// message; everything before it is authenticated.
type skCipher interface {
	// bodyLen is the body size for n plaintext bytes.
	bodyLen(n int) int
	// seal writes IV ‖ ciphertext ‖ ICV into msg[bodyOff:].
	seal(msg []byte, bodyOff int, plain []byte) error
	// open verifies and decrypts msg[bodyOff:], returning the payload
	// chain without padding.
	open(msg []byte, bodyOff int) ([]byte, error)
}

// encrKeyLen returns the SK_e / ESP key size in bytes, including the
// 4-byte salt of an AEAD (RFC 5282 §7.1, RFC 7634 §4).
func encrKeyLen(id uint16, bits int) (int, error) {
	switch id {
	case wire.EncrAESGCM16:
		if bits != 128 && bits != 256 && bits != 192 {
			return 0, fmt.Errorf("ike: AES-GCM key length %d", bits)
		}
		return bits/8 + 4, nil
	case wire.EncrChaCha20Poly1305:
		if bits != 0 && bits != 256 {
			return 0, fmt.Errorf("ike: ChaCha20-Poly1305 key length %d", bits)
		}
		return 36, nil
	case wire.EncrAESCBC:
		if bits != 128 && bits != 256 && bits != 192 {
			return 0, fmt.Errorf("ike: AES-CBC key length %d", bits)
		}
		return bits / 8, nil
	}
	return 0, fmt.Errorf("ike: unsupported encryption algorithm %d", id)
}

// isAEAD reports whether the encryption transform has integrity built in.
func isAEAD(id uint16) bool { return id == wire.EncrAESGCM16 || id == wire.EncrChaCha20Poly1305 }

func newSKCipher(encr uint16, key []byte, in integ, ikey []byte, rand io.Reader) (skCipher, error) {
	switch encr {
	case wire.EncrAESGCM16, wire.EncrChaCha20Poly1305:
		k, salt := key[:len(key)-4], key[len(key)-4:]
		var a cipher.AEAD
		var err error
		if encr == wire.EncrAESGCM16 {
			var b cipher.Block
			if b, err = aes.NewCipher(k); err == nil {
				a, err = cipher.NewGCM(b)
			}
		} else {
			a, err = chacha20poly1305.New(k)
		}
		if err != nil {
			return nil, err
		}
		return &aeadSK{aead: a, salt: append([]byte(nil), salt...)}, nil
	case wire.EncrAESCBC:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		if len(ikey) != in.keyLen {
			return nil, errors.New("ike: integrity key missing for AES-CBC")
		}
		return &cbcSK{block: b, integ: in, ikey: ikey, rand: rand}, nil
	}
	return nil, fmt.Errorf("ike: unsupported encryption algorithm %d", encr)
}

// aeadSK is AES-GCM-16 or ChaCha20-Poly1305: nonce = salt ‖ 8-byte IV taken
// from a counter, so an IV never repeats under one key.
type aeadSK struct {
	aead cipher.AEAD
	salt []byte
	iv   uint64
}

func (c *aeadSK) bodyLen(n int) int { return 8 + n + 1 + c.aead.Overhead() }

func (c *aeadSK) seal(msg []byte, off int, plain []byte) error {
	c.iv++
	body := msg[off:]
	binary.BigEndian.PutUint64(body, c.iv)
	nonce := append(append(make([]byte, 0, 12), c.salt...), body[:8]...)
	p := append(append(make([]byte, 0, len(plain)+1), plain...), 0) // no padding, pad length 0
	c.aead.Seal(body[8:8], nonce, p, msg[:off])
	return nil
}

func (c *aeadSK) open(msg []byte, off int) ([]byte, error) {
	body := msg[off:]
	if len(body) < 8+1+c.aead.Overhead() {
		return nil, fmt.Errorf("ike: SK body of %d bytes too short", len(body))
	}
	nonce := append(append(make([]byte, 0, 12), c.salt...), body[:8]...)
	p, err := c.aead.Open(nil, nonce, body[8:], msg[:off])
	if err != nil {
		return nil, errIntegrity
	}
	return unpad(p)
}

func unpad(p []byte) ([]byte, error) {
	pad := int(p[len(p)-1])
	if pad+1 > len(p) {
		return nil, fmt.Errorf("ike: SK pad length %d exceeds %d bytes", pad, len(p))
	}
	return p[:len(p)-1-pad], nil
}

// cbcSK is AES-CBC with an HMAC-SHA2 ICV over the whole message.
type cbcSK struct {
	block cipher.Block
	integ integ
	ikey  []byte
	rand  io.Reader
}

func (c *cbcSK) bodyLen(n int) int {
	return aes.BlockSize + (n+1+aes.BlockSize-1)/aes.BlockSize*aes.BlockSize + c.integ.icvLen
}

func (c *cbcSK) seal(msg []byte, off int, plain []byte) error {
	body := msg[off : len(msg)-c.integ.icvLen]
	iv := body[:aes.BlockSize]
	if _, err := io.ReadFull(c.rand, iv); err != nil {
		return err
	}
	ct := body[aes.BlockSize:]
	copy(ct, plain)
	pad := len(ct) - len(plain) - 1
	for i := len(plain); i < len(ct)-1; i++ {
		ct[i] = 0
	}
	ct[len(ct)-1] = byte(pad)
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(ct, ct)
	m := hmac.New(c.integ.hash, c.ikey)
	m.Write(msg[:len(msg)-c.integ.icvLen])
	copy(msg[len(msg)-c.integ.icvLen:], m.Sum(nil))
	return nil
}

func (c *cbcSK) open(msg []byte, off int) ([]byte, error) {
	body := msg[off:]
	n := len(body) - aes.BlockSize - c.integ.icvLen
	if n < aes.BlockSize || n%aes.BlockSize != 0 {
		return nil, fmt.Errorf("ike: SK body of %d bytes is not IV ‖ blocks ‖ ICV", len(body))
	}
	m := hmac.New(c.integ.hash, c.ikey)
	m.Write(msg[:len(msg)-c.integ.icvLen])
	if !hmac.Equal(m.Sum(nil)[:c.integ.icvLen], msg[len(msg)-c.integ.icvLen:]) {
		return nil, errIntegrity
	}
	p := make([]byte, n)
	cipher.NewCBCDecrypter(c.block, body[:aes.BlockSize]).CryptBlocks(p, body[aes.BlockSize:aes.BlockSize+n])
	return unpad(p)
}

// sealMessage marshals h with payloads inside an SK payload and encrypts it.
func sealMessage(h wire.Header, payloads []wire.Payload, c skCipher) ([]byte, error) {
	first, plain, err := wire.MarshalPayloads(payloads)
	if err != nil {
		return nil, err
	}
	bl := c.bodyLen(len(plain))
	m := &wire.Message{Header: h, Payloads: []wire.Payload{&wire.Encrypted{NextPayload: first, Body: make([]byte, bl)}}}
	b, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	if err := c.seal(b, len(b)-bl, plain); err != nil {
		return nil, err
	}
	return b, nil
}

// openMessage decrypts the SK payload of raw (already parsed as m) and
// returns the inner payloads.
func openMessage(raw []byte, m *wire.Message, c skCipher) ([]wire.Payload, error) {
	if len(m.Payloads) == 0 {
		return nil, errors.New("ike: message has no SK payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*wire.Encrypted)
	if !ok {
		return nil, errors.New("ike: message has no SK payload")
	}
	plain, err := c.open(raw, len(raw)-len(sk.Body))
	if err != nil {
		return nil, err
	}
	return wire.ParsePayloads(sk.NextPayload, plain)
}
