package upstream

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/cryptobyte"
)

// echKey makes an ECH key pair for the server (X25519, HKDF-SHA256,
// AES-128-GCM) and returns it with the one-config ECHConfigList a client
// needs (draft-ietf-tls-esni §4).
func echKey(t testing.TB, id uint8, publicName string) (tls.EncryptedClientHelloKey, []byte) {
	t.Helper()
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddUint16(0xfe0d) // version
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(id)
		b.AddUint16(0x0020) // DHKEM(X25519, HKDF-SHA256)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(priv.PublicKey().Bytes()) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			b.AddUint16(0x0001) // HKDF-SHA256
			b.AddUint16(0x0001) // AES-128-GCM
		})
		b.AddUint8(0) // maximum_name_length
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(publicName)) })
		b.AddUint16(0) // no extensions
	})
	config := b.BytesOrPanic()
	var list cryptobyte.Builder
	list.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(config) })
	return tls.EncryptedClientHelloKey{Config: config, PrivateKey: priv.Bytes(), SendAsRetry: true}, list.BytesOrPanic()
}

// TestECH covers ECH towards an upstream: accepted with the right config,
// retried with the server's retry configs after a key rotation, fail-closed
// under require, and a plain fallback when opportunistic.
func TestECH(t *testing.T) {
	pki := newPKI(t)
	current, currentList := echKey(t, 1, "dns.test")
	_, staleList := echKey(t, 2, "dns.test")

	echServer := pki.serverConfig("dot", "doq", "h2")
	echServer.MinVersion = tls.VersionTLS13
	echServer.EncryptedClientHelloKeys = []tls.EncryptedClientHelloKey{current}
	plainServer := pki.serverConfig("dot", "doq")

	tests := []struct {
		name    string
		server  *tls.Config
		list    []byte
		policy  ECHPolicy
		via     string // dot (default), doq, doh, h3
		wantECH bool
		wantErr error
	}{
		{"accepted", echServer, currentList, ECHOpportunistic, "", true, nil},
		{"accepted over QUIC", echServer, currentList, ECHRequire, "doq", true, nil},
		{"accepted over DoH", echServer, currentList, ECHRequire, "doh", true, nil},
		{"accepted over HTTP/3", echServer, currentList, ECHRequire, "h3", true, nil},
		{"stale config retried", echServer, staleList, ECHRequire, "", true, nil},
		{"stale config retried over DoH", echServer, staleList, ECHRequire, "doh", true, nil},
		{"required without config", echServer, nil, ECHRequire, "", false, ErrECHRequired},
		{"required, server without ECH", plainServer, currentList, ECHRequire, "", false, ErrECHRejected},
		{"opportunistic falls back", plainServer, currentList, ECHOpportunistic, "", false, nil},
		{"off", echServer, currentList, ECHOff, "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t)
			var url string
			switch tt.via {
			case "doq":
				url = "quic://" + srv.startDoQ(t, tt.server).String()
			case "doh":
				url = srv.startDoH(t, tt.server, srv.dohHandler)
			case "h3":
				url = srv.startH3(t, tt.server)
			default:
				url = "tls://" + srv.startDoT(t, tt.server).String()
			}
			reg := prometheus.NewRegistry()
			opts := pki.clientOptions()
			opts.ServerName = "dns.test" // ECH hides a name, not an IP
			opts.ECHConfigList, opts.ECH = tt.list, tt.policy
			opts.Metrics = NewMetrics(reg)
			u, err := Parse(url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			_, err = u.Exchange(context.Background(), query("www.example.", dns.TypeA))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			label := map[bool]string{true: "true", false: "false"}[tt.wantECH]
			if n := counterValue(t, reg, "lamina_upstream_connections_total", map[string]string{"ech": label}); n != 1 {
				t.Fatalf("connections{ech=%s} = %v, want 1", label, n)
			}
		})
	}
}

// TestECHDiscovered: with no configured list, the ECH config is found in
// the server's SVCB record (RFC 9461) through the bootstrap and used.
func TestECHDiscovered(t *testing.T) {
	pki := newPKI(t)
	key, list := echKey(t, 1, "dns.test")
	cfg := pki.serverConfig("dot")
	cfg.MinVersion = tls.VersionTLS13
	cfg.EncryptedClientHelloKeys = []tls.EncryptedClientHelloKey{key}
	srv := startServer(t)
	_, port, _ := net.SplitHostPort(srv.startDoT(t, cfg).String())
	boot := startServer(t)
	boot.echList.Store(&list)

	reg := prometheus.NewRegistry()
	opts := pki.clientOptions()
	opts.Bootstrap = NewUDP(boot.addr, Options{})
	defer opts.Bootstrap.Close()
	opts.ECH = ECHRequire
	opts.Metrics = NewMetrics(reg)
	u, err := Parse("tls://dns.test:"+port, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	testRoundTrip(t, u, "www.example.", "192.0.2.1")
	if n := counterValue(t, reg, "lamina_upstream_connections_total", map[string]string{"ech": "true"}); n != 1 {
		t.Fatalf("connections{ech=true} = %v, want 1", n)
	}
}
