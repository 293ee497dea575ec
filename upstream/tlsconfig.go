package upstream

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// ECHPolicy says whether TLS connections to an upstream use Encrypted Client
// Hello (draft-ietf-tls-esni, RFC 9849 when published).
type ECHPolicy int

const (
	// ECHOpportunistic uses ECH when a config list is known (configured or
	// discovered) and falls back to a plain ClientHello when the server
	// does not support ECH. The zero value.
	ECHOpportunistic ECHPolicy = iota
	// ECHRequire fails closed: no connection without an accepted ECH.
	ECHRequire
	// ECHOff never sends ECH.
	ECHOff
)

var echPolicyNames = []string{"opportunistic", "require", "off"}

func (p ECHPolicy) String() string {
	if p < 0 || int(p) >= len(echPolicyNames) {
		return fmt.Sprintf("ECHPolicy(%d)", int(p))
	}
	return echPolicyNames[p]
}

// ParseECHPolicy maps require, opportunistic and off ("" is opportunistic).
func ParseECHPolicy(s string) (ECHPolicy, error) {
	for i, n := range echPolicyNames {
		if s == n {
			return ECHPolicy(i), nil
		}
	}
	if s == "" {
		return ECHOpportunistic, nil
	}
	return 0, fmt.Errorf("unknown ECH policy %q (want require, opportunistic or off)", s)
}

// tlsConfig builds the client TLS configuration of an encrypted upstream
// whose URL host is host, offering the ALPN protocols alpn.
func (o Options) tlsConfig(host string, alpn []string, minVersion uint16) (*tls.Config, error) {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	// An IP literal as ServerName makes crypto/tls verify the IP SANs and
	// send no SNI, as RFC 6066 §3 requires.
	cfg.ServerName = cmp.Or(o.ServerName, cfg.ServerName, host)
	cfg.MinVersion = max(cfg.MinVersion, minVersion)
	cfg.NextProtos = alpn
	if cfg.ClientSessionCache == nil {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(32)
	}
	cfg.EncryptedClientHelloConfigList = nil // per connection, see echDialer
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if len(o.PinSHA256) > 0 {
		pins := make([][]byte, len(o.PinSHA256))
		for i, p := range o.PinSHA256 {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("pin %q: not a base64 SHA-256 digest", p)
			}
			pins[i] = b
		}
		next := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if next != nil {
				if err := next(cs); err != nil {
					return err
				}
			}
			return checkPins(cs.PeerCertificates, pins)
		}
	}
	return cfg, nil
}

// ErrPinMismatch means no certificate of the server's chain has a pinned
// public key (RFC 7469 style SPKI pins, as in RFC 7858 §4.2).
var ErrPinMismatch = errors.New("upstream: no certificate matches the pinned SPKI")

func checkPins(chain []*x509.Certificate, pins [][]byte) error {
	for _, c := range chain {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		for _, p := range pins {
			if bytes.Equal(sum[:], p) {
				return nil
			}
		}
	}
	return ErrPinMismatch
}

// SPKIPin returns the pin of a certificate for Options.PinSHA256: the base64
// SHA-256 of its SubjectPublicKeyInfo.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
