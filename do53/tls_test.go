package do53

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// testCert is a self-signed certificate for dns.example, public.example and
// 127.0.0.1.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dns.example"},
		DNSNames:              []string{"dns.example", "public.example"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// testECH returns a server ECH key and the matching ECHConfigList (draft-ietf-tls-esni
// §4: version 0xfe0d, X25519, HKDF-SHA256, AES-128-GCM).
func testECH(t testing.TB, publicName string) (tls.EncryptedClientHelloKey, []byte) {
	t.Helper()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.PublicKey().Bytes()
	var c []byte
	c = append(c, 7)          // config_id
	c = append(c, 0x00, 0x20) // KEM X25519
	c = binary.BigEndian.AppendUint16(c, uint16(len(pub)))
	c = append(c, pub...)
	c = append(c, 0, 4, 0, 1, 0, 1) // suites: HKDF-SHA256 + AES-128-GCM
	c = append(c, 0)                // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = append(c, 0, 0) // extensions
	cfg := binary.BigEndian.AppendUint16([]byte{0xfe, 0x0d}, uint16(len(c)))
	cfg = append(cfg, c...)
	list := binary.BigEndian.AppendUint16(nil, uint16(len(cfg)))
	list = append(list, cfg...)
	return tls.EncryptedClientHelloKey{Config: cfg, PrivateKey: priv.Bytes(), SendAsRetry: true}, list
}

// TestDoTStreamWithECH runs the stream server over a TLS listener, as package
// dot does, and checks the TLS facts (ECH accepted, inner SNI) reach the
// Handler and the metrics, and that padding applies.
func TestDoTStreamWithECH(t *testing.T) {
	cert, pool := testCert(t)
	key, list := testECH(t, "public.example")
	var mu sync.Mutex
	var seen []resolver.TLSInfo
	h := resolver.HandlerFunc(func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
		mu.Lock()
		if q.TLS != nil {
			seen = append(seen, *q.TLS)
		}
		mu.Unlock()
		return answerA(ctx, q)
	})
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	srvTLS := &tls.Config{
		Certificates:             []tls.Certificate{cert},
		MinVersion:               tls.VersionTLS13,
		NextProtos:               []string{"dot"},
		EncryptedClientHelloKeys: []tls.EncryptedClientHelloKey{key},
	}
	_, addr := startStream(t, StreamConfig{Config: Config{Handler: h, Metrics: m}, Transport: resolver.TLS},
		func(l net.Listener) net.Listener { return tls.NewListener(l, srvTLS) })

	c, err := tls.Dial("tcp", addr, &tls.Config{
		RootCAs:                        pool,
		ServerName:                     "dns.example",
		NextProtos:                     []string{"dot"},
		EncryptedClientHelloConfigList: list,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.ConnectionState().ECHAccepted {
		t.Fatal("client: ECH not accepted")
	}
	q := withOpt(query("a.example.", dns.TypeA), false, &dns.EDNS0_PADDING{Padding: make([]byte, 8)})
	b := pack(t, q)
	if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(hdr); err != nil {
		t.Fatal(err)
	}
	if n := int(hdr[0])<<8 | int(hdr[1]); n != 468 {
		t.Fatalf("response is %d bytes, want one 468-byte padding block", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("handler saw %d TLS queries", len(seen))
	}
	want := resolver.TLSInfo{Version: tls.VersionTLS13, CipherSuite: seen[0].CipherSuite, ServerName: "dns.example", ALPN: "dot", ECHAccepted: true}
	if seen[0] != want {
		t.Fatalf("TLSInfo %+v, want %+v", seen[0], want)
	}
	if n := value(m.ech.WithLabelValues("tls")); n != 1 {
		t.Fatalf("lamina_ech_queries_total{tls} = %v", n)
	}
}

func TestDoTHandshakeTimeout(t *testing.T) {
	cert, _ := testCert(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	_, addr := startStream(t, StreamConfig{
		Config:           Config{Handler: resolver.HandlerFunc(answerA)},
		Transport:        resolver.TLS,
		HandshakeTimeout: 50 * time.Millisecond,
	}, func(l net.Listener) net.Listener { return tls.NewListener(l, srvTLS) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x16, 0x03, 0x01}) // half a ClientHello record header, then silence
	waitClosed(t, c)
}
