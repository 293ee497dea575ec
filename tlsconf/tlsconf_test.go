package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// clock is a settable time source for rotation and reload tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock                   { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func caPool(t *testing.T, p *Provider) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("CA file holds no certificate")
	}
	return pool
}

// handshake runs a real TLS handshake over a pipe between p's server config
// and a client config, returning both sides' states or the client's error.
func handshake(t *testing.T, p *Provider, proto Proto, client *tls.Config) (tls.ConnectionState, tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		conn *tls.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		srv := tls.Server(s, p.ServerConfig(proto))
		srv.SetDeadline(time.Now().Add(10 * time.Second))
		done <- result{srv, srv.Handshake()}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := tls.Client(c, client)
	cl.SetDeadline(time.Now().Add(10 * time.Second))
	cerr := cl.Handshake()
	c.Close()
	r := <-done
	if r.conn == nil {
		t.Fatal(r.err)
	}
	defer r.conn.Close()
	srv := r.conn
	return cl.ConnectionState(), srv.ConnectionState(), cerr
}

func TestGeneratedCertificate(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{StateDir: dir, Names: []string{"dns.example.test"}}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := caPool(t, p)
	for _, tc := range []struct{ sni, verify string }{
		{"dns.example.test", "dns.example.test"},
		{"", "127.0.0.1"}, // no SNI (dig, dnsperf): the default certificate has the IP SAN
		{"", "::1"},
	} {
		cs, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: tc.verify, NextProtos: []string{"dot"}})
		if err != nil {
			t.Fatalf("sni %q verify %q: %v", tc.sni, tc.verify, err)
		}
		if cs.NegotiatedProtocol != "dot" || cs.Version != tls.VersionTLS13 {
			t.Errorf("alpn %q version %x", cs.NegotiatedProtocol, cs.Version)
		}
	}
	// No ALPN at all is accepted (q sends none on DoT).
	if _, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: "dns.example.test"}); err != nil {
		t.Errorf("no ALPN: %v", err)
	}
	// TLS 1.2 is refused unless switched on.
	if _, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: "dns.example.test", MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("TLS 1.2 accepted by default")
	}
	// A restart reuses CA and certificate.
	before := p.Certificate().Certificate[0]
	p2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, p2.Certificate().Certificate[0]) {
		t.Error("certificate regenerated on restart")
	}
	// A new name issues a new certificate from the same CA.
	cfg.Names = append(cfg.Names, "other.example.test")
	p3, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, p3, DoH, &tls.Config{RootCAs: pool, ServerName: "other.example.test"}); err != nil {
		t.Errorf("new name with old CA: %v", err)
	}
}

func TestTLS12Switch(t *testing.T) {
	p, err := New(Config{StateDir: t.TempDir(), TLS12: true})
	if err != nil {
		t.Fatal(err)
	}
	cs, _, err := handshake(t, p, DoH, &tls.Config{RootCAs: caPool(t, p), ServerName: "127.0.0.1", MaxVersion: tls.VersionTLS12})
	if err != nil || cs.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 with switch: %v %x", err, cs.Version)
	}
	if c := p.ServerConfig(DoQ); c.MinVersion != tls.VersionTLS13 {
		t.Error("DoQ config allows TLS 1.2")
	}
	if _, err := New(Config{StateDir: t.TempDir(), TLS12: true, ECH: ECHConfig{PublicName: "public.example.test"}}); err == nil {
		t.Error("TLS 1.2 with ECH accepted")
	}
}

func TestHotReload(t *testing.T) {
	// Issue two certificates for the same files from a throwaway CA.
	gen := t.TempDir()
	ca, _, err := loadOrCreateCA(gen, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, err := ca.ensureServerCert(certPath, keyPath, []string{"one.example.test"}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	p, err := New(Config{CertFile: certPath, KeyFile: keyPath, Now: clk.Now, ReloadInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if p.CAFile() != "" {
		t.Error("CAFile set although the certificate comes from files")
	}
	first := p.Certificate()
	if _, err := ca.ensureServerCert(certPath, keyPath, []string{"two.example.test"}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(certPath, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if p.Certificate() != first {
		t.Error("reloaded before the interval passed")
	}
	clk.Advance(2 * time.Second)
	if got := p.Certificate(); got == first || got.Leaf.VerifyHostname("two.example.test") != nil {
		t.Error("certificate not reloaded after the files changed")
	}
	// A broken file keeps the working certificate.
	os.WriteFile(certPath, []byte("garbage"), 0o644)
	clk.Advance(2 * time.Second)
	if got := p.Certificate(); got == nil || got.Leaf.VerifyHostname("two.example.test") != nil {
		t.Error("broken file replaced the working certificate")
	}
	if err := p.Reload(); err == nil {
		t.Error("Reload of a broken file reported no error")
	}
}

func TestSelfRecords(t *testing.T) {
	p, err := New(Config{StateDir: t.TempDir(), Names: []string{"dns.example.test"}, ECH: ECHConfig{PublicName: "public.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	svc := Service{Name: "dns.example.test", DoHPort: 8443, H3: true, DoTPort: 8853, DoQPort: 8853,
		IPv4: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, IPv6: []netip.Addr{netip.MustParseAddr("::1")}}
	rrs := p.SelfRecords(svc)
	if len(rrs) != 9 { // HTTPS + A + AAAA + 3 × _dns.name + 3 × _dns.resolver.arpa
		t.Fatalf("got %d records", len(rrs))
	}
	if a, ok := rrs[1].(*dns.A); !ok || a.Hdr.Name != "dns.example.test." || a.A.String() != "127.0.0.1" {
		t.Errorf("no A record for the service name: %v", rrs[1])
	}
	if a, ok := rrs[2].(*dns.AAAA); !ok || a.AAAA.String() != "::1" {
		t.Errorf("no AAAA record for the service name: %v", rrs[2])
	}
	m := new(dns.Msg)
	m.Answer = rrs
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	var echs, dohpaths int
	for _, rr := range m.Answer {
		var kvs []dns.SVCBKeyValue
		switch r := rr.(type) {
		case *dns.HTTPS:
			kvs = r.Value
		case *dns.SVCB:
			kvs = r.Value
			if r.Target != "dns.example.test." {
				t.Errorf("SVCB target %q", r.Target)
			}
		}
		for _, kv := range kvs {
			switch v := kv.(type) {
			case *dns.SVCBECHConfig:
				if !bytes.Equal(v.ECH, p.ECHConfigList()) {
					t.Error("ech value differs from the current list")
				}
				echs++
			case *dns.SVCBDoHPath:
				if v.Template != "/dns-query{?dns}" {
					t.Errorf("dohpath %q", v.Template)
				}
				dohpaths++
			}
		}
	}
	if echs != 7 || dohpaths != 2 {
		t.Errorf("ech on %d records, dohpath on %d", echs, dohpaths)
	}
	old := p.ECHConfigList()
	if err := p.RotateECH(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(old, p.ECHConfigList()) {
		t.Fatal("rotation kept the list")
	}
	for _, kv := range p.SelfRecords(svc)[0].(*dns.HTTPS).Value {
		if v, ok := kv.(*dns.SVCBECHConfig); ok && !bytes.Equal(v.ECH, p.ECHConfigList()) {
			t.Error("records do not follow rotation")
		}
	}
	f := p.SelfRecordsFunc(svc)
	first := f()
	if len(first) != 9 || &f()[0] != &first[0] {
		t.Error("SelfRecordsFunc rebuilt without rotation")
	}
	if err := p.RotateECH(); err != nil {
		t.Fatal(err)
	}
	if got := f(); &got[0] == &first[0] {
		t.Error("SelfRecordsFunc kept records across rotation")
	}
	if (*Provider)(nil).SelfRecords(svc) == nil || p.SelfRecords(Service{}) != nil {
		t.Error("nil provider or empty name handled wrongly")
	}
}

func TestECHConfigRoundTrip(t *testing.T) {
	k, err := GenerateECHKey("public.example.test", 7)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := ParseECHConfigList(MarshalECHConfigList(k.Config))
	if err != nil || len(cfgs) != 1 {
		t.Fatal(err, len(cfgs))
	}
	c := cfgs[0]
	if c.Version != 0xfe0d || c.ID != 7 || c.KEM != 0x20 || len(c.PublicKey) != 32 || c.PublicName != "public.example.test" ||
		len(c.Suites) != 2 || c.Suites[0] != [2]uint16{1, 1} || c.Suites[1] != [2]uint16{1, 3} {
		t.Errorf("decoded %+v", c)
	}
	for _, bad := range []string{"", "localhost", "a..b", "*.example.test", "-"} {
		if _, err := GenerateECHKey(bad, 1); err == nil {
			t.Errorf("public name %q accepted", bad)
		}
	}
	if _, err := ECHKeygen("", "public.example.test"); err == nil {
		t.Error("keygen without state dir")
	}
}

func TestECHKeygen(t *testing.T) {
	dir := t.TempDir()
	first, err := ECHKeygen(dir, "public.example.test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{StateDir: dir, ECH: ECHConfig{PublicName: "public.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, p.ECHConfigList()) {
		t.Fatal("server did not load the generated key")
	}
	second, err := ECHKeygen(dir, "public.example.test")
	if err != nil || bytes.Equal(first, second) {
		t.Fatal("second keygen did not make a new key", err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(second, p.ECHConfigList()) {
		t.Error("Reload did not pick up the new key")
	}
	if n := len(p.ech.current().tlsKeys); n != 2 {
		t.Errorf("%d keys held, want the new and the one in grace", n)
	}
}

func FuzzParseECHConfigList(f *testing.F) {
	k, _ := GenerateECHKey("public.example.test", 1)
	f.Add(MarshalECHConfigList(k.Config))
	f.Add([]byte{0, 0})
	f.Add([]byte{0, 4, 0xfe, 0x0d, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cfgs, err := ParseECHConfigList(b)
		if err == nil && len(cfgs) == 0 && len(b) > 2 && !errors.Is(err, errECHConfig) {
			return // unknown versions only
		}
	})
}

// TestSessionTickets: resumption works by default; the switch turns it off.
func TestSessionTickets(t *testing.T) {
	for _, off := range []bool{false, true} {
		p, err := New(Config{StateDir: t.TempDir(), DisableSessionTickets: off})
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{RootCAs: caPool(t, p), ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		resumed := false
		for range 2 {
			// The client reads the ticket only when it reads application
			// data, so exchange one byte per connection.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s := tls.Server(c, p.ServerConfig(DoT))
				s.SetDeadline(time.Now().Add(10 * time.Second))
				s.Write([]byte{1})
				s.Read(make([]byte, 1))
				s.Close()
			}()
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Read(make([]byte, 1))
			resumed = c.ConnectionState().DidResume
			c.Write([]byte{1})
			c.Close()
			ln.Close()
		}
		if resumed == off {
			t.Errorf("tickets off=%v: second connection resumed=%v", off, resumed)
		}
	}
}
