package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero Config fields.
const (
	defaultReloadInterval = 5 * time.Second
	defaultECHRotate      = 30 * 24 * time.Hour
	defaultECHGrace       = 7 * 24 * time.Hour
)

// Config says where the TLS material comes from. The zero value (with a
// StateDir) serves a generated certificate for 127.0.0.1 and ::1 without ECH.
type Config struct {
	// CertFile and KeyFile are a PEM certificate chain and key. Both empty
	// means a certificate issued by a local CA generated in StateDir.
	CertFile, KeyFile string

	// StateDir holds generated certificates (<StateDir>/tls) and ECH keys
	// (<StateDir>/ech). Required when a certificate is generated or ECH is on.
	StateDir string

	// Names are the service's DNS names, put into a generated certificate
	// together with ECH.PublicName, 127.0.0.1, ::1 and Addrs.
	Names []string
	Addrs []netip.Addr

	// TLS12 lets DoT and DoH clients negotiate TLS 1.2. It cannot be combined
	// with ECH, which is TLS 1.3 only. QUIC transports are always TLS 1.3.
	TLS12 bool

	// DisableSessionTickets turns resumption off, for clients such as
	// DNS-OARC flame that mishandle TLS 1.3 tickets.
	DisableSessionTickets bool

	ECH ECHConfig

	// ReloadInterval bounds how often handshakes check the certificate files
	// for changes. Zero means 5 s.
	ReloadInterval time.Duration

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now; tests move time
}

// ECHConfig enables Encrypted Client Hello on every listener.
type ECHConfig struct {
	// PublicName is the outer SNI of ECH clients and the name rejected
	// clients verify the certificate against. Empty disables ECH.
	PublicName string

	// Rotate is how often a new key is created. Zero means 30 days; negative
	// means never (keys change only through ECHKeygen and Reload).
	Rotate time.Duration

	// Grace is how long a replaced key is still accepted. It must exceed the
	// TTL of published HTTPS/SVCB records plus client cache slack. Zero means
	// 7 days.
	Grace time.Duration

	// CertFile and KeyFile serve the public name when Config.CertFile does not
	// cover it. Empty means a certificate from the local CA, which rejected
	// clients accept only if they trust that CA.
	CertFile, KeyFile string
}

// Proto names the transport a tls.Config is made for; it decides ALPN.
type Proto int

const (
	DoT Proto = iota // RFC 7858, ALPN "dot"
	DoH              // RFC 8484 over HTTP/2 and HTTP/1.1
	H3               // RFC 8484 over HTTP/3
	DoQ              // RFC 9250, ALPN "doq"
)

// ALPN returns the protocols offered for p. A client that sends no ALPN is
// still served (q, dig); one that offers only other protocols is refused.
func (p Proto) ALPN() []string {
	switch p {
	case DoT:
		return []string{"dot"}
	case DoH:
		return []string{"h2", "http/1.1"}
	case H3:
		return []string{"h3"}
	case DoQ:
		return []string{"doq"}
	}
	return nil
}

// Provider hands out server tls.Configs backed by live certificates and ECH
// keys. It is safe for concurrent use; the configs it returns stay valid
// across Reload and key rotation.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	main    *certFile
	public  *certFile // nil when main covers the public name
	ech     *echKeySet
	caFile  string
	tickets *tls.Config // holds the session ticket keys all listeners share

	gen        []generated  // certificates Lamina renews itself
	renewCheck atomic.Int64 // UnixNano of the next expiry check
	renewing   atomic.Bool  // a background renewal is running
	renewMu    sync.Mutex   // serialises renewals (handshake-triggered and Reload)
}

// New loads or generates the certificate and ECH keys.
func New(cfg Config) (*Provider, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = defaultReloadInterval
	}
	ech := cfg.ECH.PublicName != ""
	switch {
	case (cfg.CertFile == "") != (cfg.KeyFile == ""):
		return nil, errors.New("tlsconf: cert_file and key_file go together")
	case (cfg.ECH.CertFile == "") != (cfg.ECH.KeyFile == ""):
		return nil, errors.New("tlsconf: ech cert_file and key_file go together")
	case cfg.StateDir == "" && (cfg.CertFile == "" || ech):
		return nil, errors.New("tlsconf: a state directory is needed for generated certificates and ECH keys")
	case ech && cfg.TLS12:
		return nil, errors.New("tlsconf: ECH is TLS 1.3 only; it cannot be combined with TLS 1.2")
	}
	if ech {
		cfg.ECH.PublicName = strings.TrimSuffix(cfg.ECH.PublicName, ".")
		if cfg.ECH.Rotate == 0 {
			cfg.ECH.Rotate = defaultECHRotate
		}
		if cfg.ECH.Grace <= 0 {
			cfg.ECH.Grace = defaultECHGrace
		}
	}
	p := &Provider{cfg: cfg, log: cfg.Logger.With("component", "tlsconf"), tickets: &tls.Config{}}
	if err := p.loadCerts(); err != nil {
		return nil, err
	}
	p.renewCheck.Store(cfg.Now().Add(renewCheckInterval).UnixNano())
	if ech {
		var err error
		p.ech, err = newECHKeySet(cfg.StateDir, cfg.ECH.PublicName, cfg.ECH.Rotate, cfg.ECH.Grace, cfg.Now, p.log.Info)
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Provider) loadCerts() error {
	cfg := p.cfg
	now := cfg.Now()
	certPath, keyPath := cfg.CertFile, cfg.KeyFile
	var ca *localCA
	localCA := func() (*localCA, error) {
		if ca != nil {
			return ca, nil
		}
		dir := filepath.Join(cfg.StateDir, "tls")
		c, st, err := loadOrCreateCA(dir, now)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: local CA: %w", err)
		}
		switch st {
		case caCreated:
			p.log.Info("generated local CA; clients must trust it", "ca", c.path)
		case caReplaced:
			p.log.Warn("local CA had expired; generated a new one that clients must trust instead", "ca", c.path)
		default:
			p.warnCA(c, now)
		}
		ca, p.caFile = c, c.path
		return c, nil
	}
	var names []string
	var ips []netip.Addr
	if certPath == "" {
		c, err := localCA()
		if err != nil {
			return err
		}
		dir := filepath.Dir(c.path)
		certPath, keyPath = filepath.Join(dir, serverCertName), filepath.Join(dir, serverKeyName)
		names = append([]string(nil), cfg.Names...)
		if cfg.ECH.PublicName != "" {
			names = append(names, cfg.ECH.PublicName)
		}
		ips = append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, cfg.Addrs...)
		issued, err := c.ensureServerCert(certPath, keyPath, names, ips, now)
		if err != nil {
			return fmt.Errorf("tlsconf: issuing server certificate: %w", err)
		}
		p.log.Info("serving a certificate from the local CA", "cert", certPath, "ca", c.path, "issued", issued)
	}
	var err error
	if p.main, err = newCertFile(certPath, keyPath, cfg.ReloadInterval, cfg.Now, p.log.Warn); err != nil {
		return err
	}
	if cfg.CertFile == "" {
		p.gen = append(p.gen, generated{ca, certPath, keyPath, names, ips, p.main})
	}
	pub := cfg.ECH.PublicName
	if pub == "" || p.main.get().Leaf.VerifyHostname(pub) == nil {
		return nil
	}
	certPath, keyPath = cfg.ECH.CertFile, cfg.ECH.KeyFile
	if certPath == "" {
		c, err := localCA()
		if err != nil {
			return err
		}
		dir := filepath.Dir(c.path)
		certPath, keyPath = filepath.Join(dir, "public-cert.pem"), filepath.Join(dir, "public-key.pem")
		if _, err := c.ensureServerCert(certPath, keyPath, []string{pub}, nil, now); err != nil {
			return fmt.Errorf("tlsconf: issuing ECH public name certificate: %w", err)
		}
		p.log.Warn("certificate does not cover the ECH public name; serving one from the local CA, "+
			"which rejected ECH clients accept only if they trust it", "public_name", pub, "ca", c.path)
	}
	if p.public, err = newCertFile(certPath, keyPath, cfg.ReloadInterval, cfg.Now, p.log.Warn); err != nil {
		return err
	}
	if cfg.ECH.CertFile == "" {
		p.gen = append(p.gen, generated{ca, certPath, keyPath, []string{pub}, nil, p.public})
	}
	return nil
}

// ServerConfig returns a new tls.Config for proto: TLS 1.3 (1.2 too for DoT
// and DoH when Config.TLS12), the proto's ALPN, live certificates and ECH keys.
// Callers may adjust the copy they get.
func (p *Provider) ServerConfig(proto Proto) *tls.Config {
	c := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             proto.ALPN(),
		GetCertificate:         p.getCertificate,
		SessionTicketsDisabled: p.cfg.DisableSessionTickets,
	}
	if !p.cfg.DisableSessionTickets {
		// One ticket key set for every listener and clone (quic-go and
		// http3 clone the config), rotated by crypto/tls: a session from
		// DoH over HTTP/2 resumes over HTTP/3, and so on.
		c.WrapSession = p.tickets.EncryptTicket
		c.UnwrapSession = p.tickets.DecryptTicket
	}
	if p.cfg.TLS12 && (proto == DoT || proto == DoH) {
		c.MinVersion = tls.VersionTLS12
	}
	if p.ech != nil {
		c.GetEncryptedClientHelloKeys = p.echKeys
	}
	return c
}

// getCertificate serves the public-name certificate to clients whose outer
// SNI is the ECH public name (rejected ECH, RFC 9849 §6.1.6), and the main
// certificate otherwise, including to clients that send no SNI (dig, dnsperf).
func (p *Provider) getCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.maybeRenew()
	if p.public != nil && strings.EqualFold(strings.TrimSuffix(h.ServerName, "."), p.cfg.ECH.PublicName) {
		return p.public.get(), nil
	}
	return p.main.get(), nil
}

// echKeys runs twice per ECH handshake (outer and inner hello), so it only
// loads a snapshot.
func (p *Provider) echKeys(*tls.ClientHelloInfo) ([]tls.EncryptedClientHelloKey, error) {
	return p.ech.current().tlsKeys, nil
}

// Reload re-reads the certificate files and the ECH key file now, for SIGHUP,
// after renewing generated certificates that are due. Connections already
// established are not affected.
func (p *Provider) Reload() error {
	err := p.renew()
	err = errors.Join(err, p.main.reload(true))
	if p.public != nil {
		err = errors.Join(err, p.public.reload(true))
	}
	if p.ech != nil {
		err = errors.Join(err, p.ech.load(false))
	}
	if err == nil {
		p.log.Info("reloaded certificates and keys")
	}
	return err
}

// CAFile is the path of the generated local CA certificate that clients must
// trust, or "" when all certificates come from files.
func (p *Provider) CAFile() string { return p.caFile }

// Certificate returns the certificate currently served to clients without SNI.
func (p *Provider) Certificate() *tls.Certificate { return p.main.get() }

// ECHConfigList returns the ECHConfigList to publish in DNS (the newest key
// only), or nil when ECH is off.
func (p *Provider) ECHConfigList() []byte {
	if p.ech == nil {
		return nil
	}
	return p.ech.current().list
}

// RotateECH creates a new current ECH key now; the previous one enters its
// grace period.
func (p *Provider) RotateECH() error {
	if p.ech == nil {
		return errors.New("tlsconf: ECH is off")
	}
	return p.ech.load(true)
}
