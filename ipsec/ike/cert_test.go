package ike_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec/ike"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

type pki struct {
	ca    *x509.Certificate
	caKey crypto.Signer
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Lamina Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &pki{ca: ca, caKey: key}
}

func (p *pki) issue(t *testing.T, name string, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestStrongSwanCertificates authenticates both ways with X.509 and RFC 7427
// signatures: an ECDSA gateway, an RSA-3072 gateway (whose IKE_AUTH answer
// needs fragmentation), and a gateway from a CA we do not trust.
func TestStrongSwanCertificates(t *testing.T) {
	p := newPKI(t)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientCert := p.issue(t, "resolver.example", clientKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		gwKey   crypto.Signer
		trusted *x509.Certificate
		wantErr bool
	}{
		{"ecdsa", ecKey, p.ca, false},
		{"rsa3072", rsaKey, p.ca, false},
		{"untrusted gateway", ecKey, newPKI(t).ca, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keyDER, err := x509.MarshalPKCS8PrivateKey(tc.gwKey)
			if err != nil {
				t.Fatal(err)
			}
			g := gateway()
			g.LocalAuth, g.RemoteAuth = "pubkey", "pubkey"
			g.CACert, g.Cert, g.Key = pemOf("CERTIFICATE", p.ca.Raw), pemOf("CERTIFICATE", p.issue(t, "gw.example", tc.gwKey)), pemOf("PRIVATE KEY", keyDER)
			lab := iketest.Start(t, g)
			s, c, k, err := dial(t, lab, func(c *ike.Config) {
				c.PSK = nil
				c.Certificate = [][]byte{clientCert}
				c.PrivateKey = clientKey
				c.RootCAs = []*x509.Certificate{tc.trusted}
			})
			if tc.wantErr {
				if !errors.Is(err, ike.ErrAuth) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("Dial error %v, want a certificate authentication failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if !strings.Contains(lab.Log(), "authentication of 'resolver.example' with RSA_EMSA_PKCS1") &&
				!strings.Contains(lab.Log(), "authentication of 'resolver.example' with ECDSA") {
				t.Error("gateway log shows no signature authentication of our identity")
			}
			child := <-k.added
			if a := queryThroughTunnel(t, c, child, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
				t.Fatalf("A record %v", a)
			}
			for _, l := range strings.Split(lab.Log(), "\n") {
				if strings.Contains(l, "authentication of") || strings.Contains(l, "fragments") {
					t.Log(strings.TrimSpace(l))
				}
			}
		})
	}
}
