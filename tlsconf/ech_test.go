package tlsconf

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

// TestECHHandshake covers the ECH life cycle against Go's client: accepted
// with the published list, a stale list rejected with retry configs that
// work, the previous key accepted during its grace period and refused after.
func TestECHHandshake(t *testing.T) {
	clk := newClock()
	p, err := New(Config{
		StateDir: t.TempDir(), Names: []string{"dns.example.test"}, Now: clk.Now,
		ECH: ECHConfig{PublicName: "public.example.test", Rotate: 24 * time.Hour, Grace: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := caPool(t, p)
	dial := func(list []byte) (tls.ConnectionState, tls.ConnectionState, error) {
		return handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: "dns.example.test",
			MinVersion: tls.VersionTLS13, EncryptedClientHelloConfigList: list})
	}
	first := p.ECHConfigList()
	cs, ss, err := dial(first)
	if err != nil || !cs.ECHAccepted || !ss.ECHAccepted || ss.ServerName != "dns.example.test" {
		t.Fatalf("fresh list: err %v client %v server %v sni %q", err, cs.ECHAccepted, ss.ECHAccepted, ss.ServerName)
	}

	// Scheduled rotation: the old key is still accepted within the grace
	// period, but only the new one is offered for retry and published.
	clk.Advance(25 * time.Hour)
	second := p.ECHConfigList()
	if string(second) == string(first) {
		t.Fatal("no rotation after the rotation period")
	}
	if cs, _, err := dial(first); err != nil || !cs.ECHAccepted {
		t.Fatalf("old key during grace: %v", err)
	}
	keys := p.ech.current().tlsKeys
	if len(keys) != 2 || !keys[0].SendAsRetry || keys[1].SendAsRetry {
		t.Fatalf("keys %d, SendAsRetry %v", len(keys), []bool{keys[0].SendAsRetry, keys[len(keys)-1].SendAsRetry})
	}

	// After the grace period the old key is gone: the client is rejected,
	// verifies the public name certificate, and gets the current list.
	clk.Advance(2 * time.Hour)
	_, _, err = dial(first)
	var rej *tls.ECHRejectionError
	if !errors.As(err, &rej) {
		t.Fatalf("stale list: %v, want ECHRejectionError", err)
	}
	if string(rej.RetryConfigList) != string(p.ECHConfigList()) {
		t.Error("retry configs are not the current list")
	}
	if cs, _, err := dial(rej.RetryConfigList); err != nil || !cs.ECHAccepted {
		t.Fatalf("retry: %v", err)
	}
	if n := len(p.ech.current().tlsKeys); n != 1 {
		t.Errorf("%d keys after grace, want 1", n)
	}
	// Keys survive a restart.
	p2, err := New(Config{StateDir: p.cfg.StateDir, Now: clk.Now, ECH: p.cfg.ECH})
	if err != nil {
		t.Fatal(err)
	}
	if string(p2.ECHConfigList()) != string(p.ECHConfigList()) {
		t.Error("restart changed the ECH key")
	}
}

// TestECHPublicNameCert: with a file certificate that does not cover the
// public name, rejected clients are served a local-CA certificate for it.
func TestECHPublicNameCert(t *testing.T) {
	gen := t.TempDir()
	ca, _, err := loadOrCreateCA(gen, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := gen+"/c.pem", gen+"/k.pem"
	if _, err := ca.ensureServerCert(certPath, keyPath, []string{"dns.example.test"}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{CertFile: certPath, KeyFile: keyPath, StateDir: t.TempDir(),
		ECH: ECHConfig{PublicName: "public.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.public == nil || p.CAFile() == "" {
		t.Fatal("no public name certificate issued")
	}
	pub, err := p.getCertificate(&tls.ClientHelloInfo{ServerName: "public.example.test"})
	if err != nil || pub.Leaf.VerifyHostname("public.example.test") != nil {
		t.Error("public name certificate does not cover the public name")
	}
	main, _ := p.getCertificate(&tls.ClientHelloInfo{ServerName: ""})
	if main.Leaf.VerifyHostname("dns.example.test") != nil {
		t.Error("no-SNI clients do not get the main certificate")
	}
}

// TestUnusedIDAllTaken: with every config_id held, unusedID still returns.
func TestUnusedIDAllTaken(t *testing.T) {
	keys := make([]storedKey, 256)
	for i := range keys {
		keys[i].Config = []byte{0, 0, 0, 0, byte(i)}
	}
	_ = unusedID(keys)
	if id := unusedID(keys[1:]); id != 0 {
		t.Errorf("unusedID = %d, want 0, the one ID free", id)
	}
}
