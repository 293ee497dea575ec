package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Names of the files the generated certificates live in, under
// <state dir>/tls. Clients are pointed at CAFile.
const (
	caCertName     = "ca.pem"
	caKeyName      = "ca-key.pem"
	serverCertName = "cert.pem"
	serverKeyName  = "key.pem"
)

// localCA is Lamina's own certificate authority, created once per state
// directory and kept, so that clients trust it only once.
type localCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string
}

// caStatus says where loadOrCreateCA's CA came from.
type caStatus int

const (
	caLoaded   caStatus = iota
	caCreated           // there was none
	caReplaced          // the stored one had expired
)

// loadOrCreateCA loads the CA in dir or creates one valid for ten years. An
// expired CA is replaced, since it can no longer vouch for anything; clients
// must then trust the new one.
func loadOrCreateCA(dir string, now time.Time) (*localCA, caStatus, error) {
	certPath, keyPath := filepath.Join(dir, caCertName), filepath.Join(dir, caKeyName)
	status := caCreated
	if cert, key, err := readPair(certPath, keyPath); err == nil && now.Before(cert.NotAfter) {
		return &localCA{cert, key, certPath}, caLoaded, nil
	} else if err == nil {
		status = caReplaced
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, 0, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, 0, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Lamina local CA", Organization: []string{"Lamina"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, 0, err
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return nil, 0, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &localCA{cert, key, certPath}, status, nil
}

// ensureServerCert makes sure certPath/keyPath hold a certificate signed by ca
// that covers names and ips and is valid for another month; otherwise it
// issues a new one. It reports whether it issued.
func (ca *localCA) ensureServerCert(certPath, keyPath string, names []string, ips []netip.Addr, now time.Time) (bool, error) {
	if cert, _, err := readPair(certPath, keyPath); err == nil && covers(cert, names, ips) &&
		now.AddDate(0, 1, 0).Before(cert.NotAfter) && cert.CheckSignatureFrom(ca.cert) == nil {
		return false, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: firstOr(names, "lamina")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return false, err
	}
	return true, writePair(certPath, keyPath, der, key)
}

func covers(cert *x509.Certificate, names []string, ips []netip.Addr) bool {
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, func(c net.IP) bool { return c.Equal(net.IP(ip.AsSlice())) }) {
			return false
		}
	}
	return true
}

func readPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("tlsconf: %s or %s is not PEM", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: %s: %w", certPath, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kp.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: %s: %w", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("tlsconf: %s is not an ECDSA key", keyPath)
	}
	return cert, key, nil
}

// writePair writes the key before the certificate, each atomically, so a
// reader that sees the new certificate also sees its key.
func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
