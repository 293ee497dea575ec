package ike

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// Signature algorithm OIDs usable in RFC 7427 Digital Signature AUTH.
var (
	oidECDSASHA256  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512  = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidRSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSASHA512    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidEd25519      = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA256       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512       = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	errBadSignature = errors.New("ike: AUTH signature does not verify")
)

// Hash algorithm identifiers for SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4):
// SHA2-256, SHA2-384, SHA2-512 and Identity (Ed25519).
var signatureHashes = []byte{0, 2, 0, 3, 0, 4, 0, 5}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// signAuth returns the AUTH data for method 14 (RFC 7427 §3): the length
// of the AlgorithmIdentifier, the AlgorithmIdentifier, the signature.
func signAuth(key crypto.Signer, octets []byte) ([]byte, error) {
	var alg algorithmIdentifier
	var digest []byte
	var opts crypto.SignerOpts
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P384():
			alg.Algorithm, opts = oidECDSASHA384, crypto.SHA384
		case elliptic.P521():
			alg.Algorithm, opts = oidECDSASHA512, crypto.SHA512
		default:
			alg.Algorithm, opts = oidECDSASHA256, crypto.SHA256
		}
	case *rsa.PublicKey:
		alg.Algorithm, alg.Parameters, opts = oidRSASHA256, asn1.NullRawValue, crypto.SHA256
	case ed25519.PublicKey:
		alg.Algorithm, opts = oidEd25519, crypto.Hash(0)
	default:
		return nil, fmt.Errorf("ike: unsupported private key type %T", pub)
	}
	if h := opts.HashFunc(); h != 0 {
		hh := h.New()
		hh.Write(octets)
		digest = hh.Sum(nil)
	} else {
		digest = octets
	}
	sig, err := key.Sign(rand.Reader, digest, opts) // ECDSA signs in ASN.1 DER, as RFC 7427 wants
	if err != nil {
		return nil, err
	}
	der, err := asn1.Marshal(alg)
	if err != nil {
		return nil, err
	}
	return append(append([]byte{byte(len(der))}, der...), sig...), nil
}

// verifyAuth checks method-14 AUTH data against pub.
func verifyAuth(pub crypto.PublicKey, data, octets []byte) error {
	if len(data) < 2 || int(data[0])+1 > len(data) {
		return errors.New("ike: malformed signature AUTH")
	}
	der, sig := data[1:1+int(data[0])], data[1+int(data[0]):]
	var alg algorithmIdentifier
	if rest, err := asn1.Unmarshal(der, &alg); err != nil || len(rest) != 0 {
		return errors.New("ike: malformed signature AlgorithmIdentifier")
	}
	hashOf := func(h crypto.Hash) []byte { hh := h.New(); hh.Write(octets); return hh.Sum(nil) }
	switch {
	case alg.Algorithm.Equal(oidECDSASHA256), alg.Algorithm.Equal(oidECDSASHA384), alg.Algorithm.Equal(oidECDSASHA512):
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errors.New("ike: ECDSA signature from a non-ECDSA certificate")
		}
		h := crypto.SHA256
		if alg.Algorithm.Equal(oidECDSASHA384) {
			h = crypto.SHA384
		} else if alg.Algorithm.Equal(oidECDSASHA512) {
			h = crypto.SHA512
		}
		if !ecdsa.VerifyASN1(k, hashOf(h), sig) {
			return errBadSignature
		}
		return nil
	case alg.Algorithm.Equal(oidRSASHA256), alg.Algorithm.Equal(oidRSASHA384), alg.Algorithm.Equal(oidRSASHA512):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("ike: RSA signature from a non-RSA certificate")
		}
		h := crypto.SHA256
		if alg.Algorithm.Equal(oidRSASHA384) {
			h = crypto.SHA384
		} else if alg.Algorithm.Equal(oidRSASHA512) {
			h = crypto.SHA512
		}
		if rsa.VerifyPKCS1v15(k, h, hashOf(h), sig) != nil {
			return errBadSignature
		}
		return nil
	case alg.Algorithm.Equal(oidRSAPSS):
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("ike: RSA-PSS signature from a non-RSA certificate")
		}
		h, salt, err := pssParams(alg.Parameters.FullBytes)
		if err != nil {
			return err
		}
		if rsa.VerifyPSS(k, h, hashOf(h), sig, &rsa.PSSOptions{SaltLength: salt, Hash: h}) != nil {
			return errBadSignature
		}
		return nil
	case alg.Algorithm.Equal(oidEd25519):
		k, ok := pub.(ed25519.PublicKey)
		if !ok || !ed25519.Verify(k, octets, sig) {
			return errBadSignature
		}
		return nil
	}
	return fmt.Errorf("ike: unsupported signature algorithm %v", alg.Algorithm)
}

// pssParams reads RSASSA-PSS-params (RFC 4055 §3.1): hash and salt length.
func pssParams(der []byte) (crypto.Hash, int, error) {
	var p struct {
		Hash       algorithmIdentifier `asn1:"explicit,tag:0,optional"`
		MGF        asn1.RawValue       `asn1:"explicit,tag:1,optional"`
		SaltLength int                 `asn1:"explicit,tag:2,optional,default:20"`
	}
	if _, err := asn1.Unmarshal(der, &p); err != nil {
		return 0, 0, errors.New("ike: malformed RSA-PSS parameters")
	}
	switch {
	case p.Hash.Algorithm.Equal(oidSHA256):
		return crypto.SHA256, p.SaltLength, nil
	case p.Hash.Algorithm.Equal(oidSHA384):
		return crypto.SHA384, p.SaltLength, nil
	case p.Hash.Algorithm.Equal(oidSHA512):
		return crypto.SHA512, p.SaltLength, nil
	}
	return 0, 0, errors.New("ike: RSA-PSS with an unsupported hash")
}

// certReq is the CERTREQ data (RFC 7296 §3.7): SHA-1 of each trusted CA's
// SubjectPublicKeyInfo.
func certReq(cas []*x509.Certificate) []byte {
	var b []byte
	for _, c := range cas {
		h := sha1.Sum(c.RawSubjectPublicKeyInfo)
		b = append(b, h[:]...)
	}
	return b
}

// verifyPeer validates the gateway's certificate chain against the trusted
// CAs and checks that IDr is one of the leaf's identities (RFC 4945 §3.1).
func verifyPeer(certs [][]byte, roots []*x509.Certificate, idr *wire.ID, now time.Time) (*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: gateway sent no certificate", ErrAuth)
	}
	leaf, err := x509.ParseCertificate(certs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: gateway certificate: %v", ErrAuth, err)
	}
	opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, der := range certs[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return nil, fmt.Errorf("%w: gateway certificate: %v", ErrAuth, err)
	}
	ok := false
	switch idr.IDType {
	case wire.IDFQDN:
		ok = leaf.VerifyHostname(string(idr.Data)) == nil
	case wire.IDRFC822:
		for _, e := range leaf.EmailAddresses {
			ok = ok || e == string(idr.Data)
		}
	case wire.IDDN:
		ok = bytes.Equal(idr.Data, leaf.RawSubject)
	case wire.IDIPv4, wire.IDIPv6:
		if a, valid := netip.AddrFromSlice(idr.Data); valid {
			for _, ip := range leaf.IPAddresses {
				b, _ := netip.AddrFromSlice(ip)
				ok = ok || b.Unmap() == a
			}
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: gateway identity %s is not in its certificate", ErrAuth, Identity{idr.IDType, idr.Data})
	}
	return leaf, nil
}

// DN returns an ID_DER_ASN1_DN identity for a certificate's subject.
func DN(cert *x509.Certificate) Identity { return Identity{Type: wire.IDDN, Value: cert.RawSubject} }
