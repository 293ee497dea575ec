package ike

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// kex is one side of a Diffie-Hellman exchange for a KE payload.
type kex interface {
	group() uint16
	public() []byte // KE payload data
	shared(peer []byte) ([]byte, error)
}

// errBadPublic reports a peer public value that fails validation (RFC 6989).
var errBadPublic = errors.New("ike: invalid peer KE public value")

func newKex(group uint16, rand io.Reader) (kex, error) {
	switch group {
	case wire.GroupX25519:
		return newECDH(group, ecdh.X25519(), rand)
	case wire.GroupECP256:
		return newECDH(group, ecdh.P256(), rand)
	case wire.GroupECP384:
		return newECDH(group, ecdh.P384(), rand)
	case wire.GroupMODP2048:
		return newMODP(rand)
	}
	return nil, fmt.Errorf("ike: unsupported KE group %d", group)
}

// ecdhKex covers X25519 (RFC 8031: the 32-byte u-coordinate) and the NIST
// curves (RFC 5903: x ‖ y without the 0x04 prefix, shared secret x only).
type ecdhKex struct {
	id   uint16
	priv *ecdh.PrivateKey
}

func newECDH(id uint16, c ecdh.Curve, rand io.Reader) (*ecdhKex, error) {
	k, err := c.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return &ecdhKex{id, k}, nil
}

func (k *ecdhKex) group() uint16 { return k.id }

func (k *ecdhKex) public() []byte {
	b := k.priv.PublicKey().Bytes()
	if k.id != wire.GroupX25519 {
		b = b[1:]
	}
	return b
}

func (k *ecdhKex) shared(peer []byte) ([]byte, error) {
	if k.id != wire.GroupX25519 {
		if len(peer) != len(k.public()) {
			return nil, errBadPublic
		}
		peer = append([]byte{4}, peer...)
	}
	pub, err := k.priv.Curve().NewPublicKey(peer) // checks the point is on the curve
	if err != nil {
		return nil, errBadPublic
	}
	s, err := k.priv.ECDH(pub) // rejects the all-zero X25519 output
	if err != nil {
		return nil, errBadPublic
	}
	return s, nil
}

// modp2048 is the RFC 3526 §3 prime, generator 2.
var modp2048, _ = new(big.Int).SetString(
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"+
		"83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"+
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"+
		"15728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)

type modpKex struct {
	x, y *big.Int
}

func newMODP(rand io.Reader) (*modpKex, error) {
	// A 512-bit exponent is well above the 2×112-bit strength of the group.
	b := make([]byte, 64)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, err
	}
	x := new(big.Int).SetBytes(b)
	return &modpKex{x: x, y: new(big.Int).Exp(big.NewInt(2), x, modp2048)}, nil
}

func (k *modpKex) group() uint16  { return wire.GroupMODP2048 }
func (k *modpKex) public() []byte { return k.y.FillBytes(make([]byte, 256)) }

func (k *modpKex) shared(peer []byte) ([]byte, error) {
	if len(peer) != 256 {
		return nil, errBadPublic
	}
	y := new(big.Int).SetBytes(peer)
	pm1 := new(big.Int).Sub(modp2048, big.NewInt(1))
	// RFC 6989 §2.1: 1 < y < p-1, and y^q = 1 for the safe prime p = 2q+1.
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, errBadPublic
	}
	q := new(big.Int).Rsh(modp2048, 1)
	if new(big.Int).Exp(y, q, modp2048).Cmp(big.NewInt(1)) != 0 {
		return nil, errBadPublic
	}
	return new(big.Int).Exp(y, k.x, modp2048).FillBytes(make([]byte, 256)), nil
}
