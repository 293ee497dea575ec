package upstream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// testPKI is a per-test CA and a server certificate for 127.0.0.1, ::1 and
// dns.test, also written as PEM files for external servers.
type testPKI struct {
	caFile, certFile, keyFile string
	roots                     *x509.CertPool
	cert                      tls.Certificate
	leaf                      *x509.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lamina test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dns.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames:    []string{"dns.test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p := &testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		roots: x509.NewCertPool(), leaf: leaf,
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}
	p.roots.AddCert(ca)
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p.caFile, "CERTIFICATE", caDER)
	write(p.certFile, "CERTIFICATE", der)
	write(p.keyFile, "EC PRIVATE KEY", keyDER)
	return p
}

func (p *testPKI) serverConfig(alpn ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}, NextProtos: alpn, MinVersion: tls.VersionTLS12}
}

// clientOptions trusts the test CA.
func (p *testPKI) clientOptions() Options {
	return Options{TLSConfig: &tls.Config{RootCAs: p.roots}}
}

// startDoT serves s's answers over DoT (miekg/dns, one query at a time per
// connection) on 127.0.0.1.
func (s *testServer) startDoT(t testing.TB, cfg *tls.Config) net.Addr {
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// No cap on queries per connection (miekg/dns closes after 128 by
	// default), so benchmarks measure DoT rather than reconnects.
	srv := &dns.Server{Listener: l, Net: "tcp-tls", Handler: dns.HandlerFunc(s.serve), MaxTCPQueries: -1}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { s.Close(); srv.Shutdown() })
	return l.Addr()
}

// dohHandler answers RFC 8484 POSTs with s's answers.
func (s *testServer) dohHandler(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 65536))
	req := new(dns.Msg)
	// The client must pad (RFC 8467) and use ID 0 (RFC 8484 §4.1).
	if err != nil || r.Method != http.MethodPost || len(body)%paddingBlock != 0 ||
		req.Unpack(body) != nil || len(req.Question) != 1 || req.Id != 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	resp := s.reply(req, false)
	if resp == nil {
		return // stopped: an empty 200 without content type
	}
	out, _ := resp.Pack()
	w.Header().Set("Content-Type", "application/dns-message")
	w.Write(out)
}

// startDoH serves DoH over h2 (and HTTP/1.1) on 127.0.0.1 and returns its
// base URL.
func (s *testServer) startDoH(t testing.TB, cfg *tls.Config, handler http.HandlerFunc) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { s.Close(); srv.Close(); <-done })
	return "https://" + l.Addr().String() + "/dns-query"
}

// startH3 serves DoH over HTTP/3 on 127.0.0.1 and returns its h3:// URL.
func (s *testServer) startH3(t testing.TB, cfg *tls.Config) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: http.HandlerFunc(s.dohHandler), TLSConfig: http3.ConfigureTLSConfig(cfg)}
	if s.shortIdle.Load() {
		srv.QUICConfig = &quic.Config{MaxIdleTimeout: time.Second}
	}
	done := make(chan struct{})
	go func() { srv.Serve(pc); close(done) }()
	t.Cleanup(func() { s.Close(); srv.Close(); <-done; pc.Close() })
	return "h3://" + pc.LocalAddr().String() + "/dns-query"
}

// startDoQ serves DoQ (RFC 9250) on 127.0.0.1, a goroutine per stream.
func (s *testServer) startDoQ(t testing.TB, cfg *tls.Config) net.Addr {
	qc := &quic.Config{Allow0RTT: true}
	if s.shortIdle.Load() {
		qc.MaxIdleTimeout = time.Second
	}
	l, err := quic.ListenAddr("127.0.0.1:0", cfg, qc)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*quic.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept(t.Context())
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				for {
					st, err := c.AcceptStream(t.Context())
					if err != nil {
						return
					}
					wg.Go(func() { s.serveDoQStream(c, st) })
				}
			})
		}
	})
	t.Cleanup(func() {
		s.Close()
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.CloseWithError(0, "")
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr()
}

func (s *testServer) serveDoQStream(c *quic.Conn, st *quic.Stream) {
	defer st.Close()
	var hdr [2]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(st, buf); err != nil {
		return
	}
	req := new(dns.Msg)
	if len(buf)%paddingBlock != 0 || req.Unpack(buf) != nil || req.Id != 0 || len(req.Question) != 1 {
		st.CancelWrite(2) // DOQ_PROTOCOL_ERROR
		return
	}
	resp := s.reply(req, false)
	if resp == nil {
		return
	}
	out, _ := resp.Pack()
	st.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
	if s.closeAfterAnswer.Load() {
		st.Close()
		time.Sleep(10 * time.Millisecond) // let the answer leave first
		c.CloseWithError(0, "idle")
	}
}
