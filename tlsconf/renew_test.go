package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const elevenAndHalfMonths = 350 * 24 * time.Hour

// waitRenewal waits for a background renewal a handshake started.
func waitRenewal(t *testing.T, p *Provider) {
	t.Helper()
	for i := 0; p.renewing.Load(); i++ {
		if i > 2000 {
			t.Fatal("background renewal did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRenewWhileRunning: a generated certificate is renewed in place by a
// handshake once it enters its last month, from the same CA and for the same
// names and addresses; Reload renews too.
func TestRenewWhileRunning(t *testing.T) {
	clk := newClock()
	names := []string{"dns.example.test"}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback(), netip.MustParseAddr("127.0.0.53")}
	p, err := New(Config{StateDir: t.TempDir(), Names: names, Addrs: ips[2:], Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitRenewal(t, p) })
	pool := caPool(t, p)
	caPEM, _ := os.ReadFile(p.CAFile())
	dial := func(name string) *x509.Certificate {
		t.Helper()
		cs, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: name, Time: clk.Now})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return cs.PeerCertificates[0]
	}
	first := dial("dns.example.test")

	// Ten months on nothing is due.
	clk.Advance(300 * 24 * time.Hour)
	dial("dns.example.test")
	waitRenewal(t, p)
	if got := dial("dns.example.test"); !got.Equal(first) {
		t.Fatal("renewed more than a month before expiry")
	}

	clk.Advance(elevenAndHalfMonths - 300*24*time.Hour)
	dial("dns.example.test") // starts the renewal; still served the old one
	waitRenewal(t, p)
	second := dial("dns.example.test")
	if !second.NotAfter.After(first.NotAfter.Add(300*24*time.Hour)) || second.Equal(first) {
		t.Fatalf("not renewed: NotAfter %v, before %v", second.NotAfter, first.NotAfter)
	}
	if !covers(second, names, ips) {
		t.Errorf("renewed certificate lost names or addresses: %v %v", second.DNSNames, second.IPAddresses)
	}
	for _, n := range []string{"127.0.0.1", "::1"} {
		if !dial(n).Equal(second) {
			t.Errorf("%s served another certificate", n)
		}
	}
	if b, _ := os.ReadFile(p.CAFile()); !bytes.Equal(b, caPEM) {
		t.Error("CA changed")
	}

	// SIGHUP renews synchronously.
	clk.Advance(elevenAndHalfMonths)
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	got := p.Certificate().Leaf
	if !got.NotAfter.After(second.NotAfter) {
		t.Errorf("Reload did not renew: NotAfter %v", got.NotAfter)
	}
	if _, err := got.Verify(x509.VerifyOptions{Roots: pool, DNSName: "dns.example.test", CurrentTime: clk.Now()}); err != nil {
		t.Errorf("renewed by Reload: %v", err)
	}
	if third := dial("dns.example.test"); !third.NotAfter.After(second.NotAfter) {
		t.Error("handshake after Reload got the old certificate")
	}
}

// TestRenewLeavesUserFiles: with the operator's certificate files, only the
// generated public-name certificate (ECH rejections) is renewed.
func TestRenewLeavesUserFiles(t *testing.T) {
	ca, _, err := loadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if _, err := ca.ensureServerCert(certPath, keyPath, []string{"dns.example.test"}, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	userCert, _ := os.ReadFile(certPath)
	userKey, _ := os.ReadFile(keyPath)
	st, _ := os.Stat(certPath)

	clk := newClock()
	p, err := New(Config{CertFile: certPath, KeyFile: keyPath, StateDir: t.TempDir(), Now: clk.Now,
		ECH: ECHConfig{PublicName: "public.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitRenewal(t, p) })
	pool := caPool(t, p)
	dial := func() *x509.Certificate {
		t.Helper()
		cs, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: pool, ServerName: "public.example.test", Time: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return cs.PeerCertificates[0]
	}
	first := dial()
	clk.Advance(elevenAndHalfMonths)
	dial()
	waitRenewal(t, p)
	if got := dial(); !got.NotAfter.After(first.NotAfter) {
		t.Errorf("public-name certificate not renewed: %v", got.NotAfter)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	c, _ := os.ReadFile(certPath)
	k, _ := os.ReadFile(keyPath)
	st2, _ := os.Stat(certPath)
	if !bytes.Equal(c, userCert) || !bytes.Equal(k, userKey) || !st2.ModTime().Equal(st.ModTime()) {
		t.Error("user certificate files were rewritten")
	}
	if !bytes.Equal(p.Certificate().Certificate[0], pemDER(t, userCert)) {
		t.Error("main certificate is no longer the user's")
	}
}

// TestCALifetime: a CA in its last year is kept with a warning; an expired
// one is replaced at start, and the server certificate follows the new CA.
func TestCALifetime(t *testing.T) {
	state := t.TempDir()
	if _, err := New(Config{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration
		log   string
	}{
		{9*365*24*time.Hour + 180*24*time.Hour, "local CA expires soon"},
		{10*365*24*time.Hour + 10*24*time.Hour, "local CA had expired"},
	} {
		var buf bytes.Buffer
		clk := newClock()
		clk.Advance(tc.after)
		p, err := New(Config{StateDir: state, Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), tc.log) {
			t.Errorf("after %v: log lacks %q:\n%s", tc.after, tc.log, buf.String())
		}
		if _, _, err := handshake(t, p, DoT, &tls.Config{RootCAs: caPool(t, p), ServerName: "127.0.0.1", Time: clk.Now}); err != nil {
			t.Errorf("after %v: %v", tc.after, err)
		}
	}
}

func pemDER(t *testing.T, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	return blk.Bytes
}
