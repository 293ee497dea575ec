package tlsconf

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/crypto/cryptobyte"
)

// Wire constants of ECHConfig (RFC 9849 §4) and the HPKE IDs (RFC 9180 §7)
// Lamina uses.
const (
	echVersion           = 0xfe0d
	kemX25519            = 0x0020
	kdfHKDFSHA256        = 0x0001
	aeadAES128GCM        = 0x0001
	aeadChaCha20Poly1305 = 0x0003
)

// ECHKey is one ECH key pair: the marshalled ECHConfig clients encrypt to, and
// the X25519 private key the server decrypts with.
type ECHKey struct {
	ID         uint8
	Config     []byte // one ECHConfig, without the list's length prefix
	PrivateKey []byte // X25519 scalar, as (*ecdh.PrivateKey).Bytes
}

// GenerateECHKey creates a fresh X25519 key and its ECHConfig (version 0xfe0d,
// HKDF-SHA256 with AES-128-GCM and ChaCha20-Poly1305). publicName is the name a
// client puts in the outer ClientHello; it must be a hostname with at least two
// labels, or clients skip the config.
func GenerateECHKey(publicName string, configID uint8) (ECHKey, error) {
	if err := checkPublicName(publicName); err != nil {
		return ECHKey{}, err
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return ECHKey{}, fmt.Errorf("tlsconf: generating ECH key: %w", err)
	}
	cfg := marshalECHConfig(configID, priv.PublicKey().Bytes(), publicName)
	return ECHKey{ID: configID, Config: cfg, PrivateKey: priv.Bytes()}, nil
}

func checkPublicName(name string) error {
	name = strings.TrimSuffix(name, ".")
	labels, ok := dns.IsDomainName(name)
	if !ok || labels < 2 || len(name) > 255 || strings.ContainsAny(name, " *") {
		return fmt.Errorf("tlsconf: ECH public name %q is not a hostname with at least two labels", name)
	}
	return nil
}

// marshalECHConfig encodes RFC 9849 §4's ECHConfig with ECHConfigContents.
func marshalECHConfig(id uint8, pub []byte, publicName string) []byte {
	var b cryptobyte.Builder
	b.AddUint16(echVersion)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(id)
		b.AddUint16(kemX25519)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(pub) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, aead := range []uint16{aeadAES128GCM, aeadChaCha20Poly1305} {
				b.AddUint16(kdfHKDFSHA256)
				b.AddUint16(aead)
			}
		})
		b.AddUint8(0) // maximum_name_length: 0 lets clients use their default padding
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(strings.TrimSuffix(publicName, "."))) })
		b.AddUint16(0) // no extensions
	})
	return b.BytesOrPanic()
}

// MarshalECHConfigList wraps ECHConfigs in the length-prefixed list that DNS
// (SvcParamKey ech) and tls.Config.EncryptedClientHelloConfigList carry.
func MarshalECHConfigList(configs ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, c := range configs {
			b.AddBytes(c)
		}
	})
	return b.BytesOrPanic()
}

// ECHConfigInfo is the decoded content of one ECHConfig.
type ECHConfigInfo struct {
	Version    uint16
	ID         uint8
	KEM        uint16
	PublicKey  []byte
	Suites     [][2]uint16 // {KDF, AEAD}
	PublicName string
}

var errECHConfig = errors.New("tlsconf: malformed ECHConfigList")

// ParseECHConfigList decodes an ECHConfigList. Configs of unknown versions are
// skipped, as RFC 9849 §4 asks of clients.
func ParseECHConfigList(list []byte) ([]ECHConfigInfo, error) {
	s := cryptobyte.String(list)
	var body cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&body) || !s.Empty() || body.Empty() {
		return nil, errECHConfig
	}
	var out []ECHConfigInfo
	for !body.Empty() {
		var c ECHConfigInfo
		var contents cryptobyte.String
		if !body.ReadUint16(&c.Version) || !body.ReadUint16LengthPrefixed(&contents) {
			return nil, errECHConfig
		}
		if c.Version != echVersion {
			continue
		}
		var pub, suites, name, exts cryptobyte.String
		var maxName uint8
		if !contents.ReadUint8(&c.ID) || !contents.ReadUint16(&c.KEM) ||
			!contents.ReadUint16LengthPrefixed(&pub) || pub.Empty() ||
			!contents.ReadUint16LengthPrefixed(&suites) || len(suites) < 4 || len(suites)%4 != 0 ||
			!contents.ReadUint8(&maxName) || !contents.ReadUint8LengthPrefixed(&name) || name.Empty() ||
			!contents.ReadUint16LengthPrefixed(&exts) || !contents.Empty() {
			return nil, errECHConfig
		}
		for !suites.Empty() {
			var kdf, aead uint16
			suites.ReadUint16(&kdf)
			suites.ReadUint16(&aead)
			c.Suites = append(c.Suites, [2]uint16{kdf, aead})
		}
		c.PublicKey = []byte(pub)
		c.PublicName = string(name)
		out = append(out, c)
	}
	return out, nil
}
