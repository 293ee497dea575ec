package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/tlsconf"
)

// needsTLS reports whether any listener is encrypted.
func needsTLS(cfg *config.Config) bool {
	return slices.ContainsFunc(cfg.Listeners, func(l config.Listener) bool {
		return l.Parsed.Scheme != "udp" && l.Parsed.Scheme != "tcp"
	})
}

// stateDir is tls.state_dir, or lamina-state next to the config file, or
// for the built-in config $XDG_STATE_HOME/lamina (~/.local/state/lamina).
func stateDir(cfg *config.Config) string {
	if d := cfg.TLS.StateDir; d != "" {
		return cfg.Path(d)
	}
	if f := cfg.File(); f != "" && f != defaultName {
		return filepath.Join(filepath.Dir(f), "lamina-state")
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "lamina")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "lamina")
	}
	return "lamina-state"
}

// newTLSProvider builds the certificate and ECH key provider the encrypted
// listeners share. It lives as long as the process: SIGHUP reloads its files,
// other tls changes need a restart.
func newTLSProvider(cfg *config.Config, log *slog.Logger) (*tlsconf.Provider, error) {
	t := cfg.TLS
	tc := tlsconf.Config{
		CertFile:              cfg.Path(t.CertFile),
		KeyFile:               cfg.Path(t.KeyFile),
		StateDir:              stateDir(cfg),
		TLS12:                 t.MinVersion == "1.2",
		DisableSessionTickets: t.DisableSessionTickets,
		Logger:                log,
	}
	if n := cfg.Resolver.ServiceName; n != "" {
		tc.Names = []string{strings.TrimSuffix(n, ".")}
	}
	for _, l := range cfg.Listeners {
		if a := l.Parsed.Addr.Addr(); !a.IsUnspecified() && !slices.Contains(tc.Addrs, a) {
			tc.Addrs = append(tc.Addrs, a)
		}
	}
	if !t.ECH.Disable && t.ECH.PublicName != "" {
		tc.ECH = tlsconf.ECHConfig{
			PublicName: strings.TrimSuffix(t.ECH.PublicName, "."),
			Rotate:     t.ECH.Rotation.D(),
			Grace:      t.ECH.Grace.D(),
			CertFile:   cfg.Path(t.ECH.CertFile),
			KeyFile:    cfg.Path(t.ECH.KeyFile),
		}
	}
	p, err := tlsconf.New(tc)
	if err != nil {
		return nil, err
	}
	if ca := p.CAFile(); ca != "" {
		log.Info("TLS certificate issued by a local CA; clients must trust it", "ca_file", ca)
	}
	return p, nil
}

// service describes the encrypted listeners for Lamina's own HTTPS/SVCB/DDR
// records; only set when resolver.service_name is.
func service(cfg *config.Config) tlsconf.Service {
	s := tlsconf.Service{Name: cfg.Resolver.ServiceName}
	h2 := map[uint16]bool{}
	for _, l := range cfg.Listeners {
		port := l.Parsed.Addr.Port()
		switch l.Parsed.Scheme {
		case "tls":
			s.DoTPort = cmpZero(s.DoTPort, port)
		case "quic":
			s.DoQPort = cmpZero(s.DoQPort, port)
		case "https":
			s.DoHPort = cmpZero(s.DoHPort, port)
			s.DoHPath = cmpZero(s.DoHPath, l.Parsed.Path)
			h2[port] = true
		default:
			continue
		}
		a := l.Parsed.Addr.Addr()
		switch {
		case a.IsUnspecified():
		case a.Is4() && !slices.Contains(s.IPv4, a):
			s.IPv4 = append(s.IPv4, a)
		case a.Is6() && !slices.Contains(s.IPv6, a):
			s.IPv6 = append(s.IPv6, a)
		}
	}
	for _, l := range cfg.Listeners {
		if l.Parsed.Scheme == "h3" && h2[l.Parsed.Addr.Port()] && l.Parsed.Addr.Port() == s.DoHPort {
			s.H3 = true
		}
	}
	return s
}

func cmpZero[T comparable](cur, v T) T {
	var zero T
	if cur == zero {
		return v
	}
	return cur
}

// selfRecords is the resolver's SelfRecords hook, or nil without a service name.
func selfRecords(cfg *config.Config, p *tlsconf.Provider) func() []dns.RR {
	if cfg.Resolver.ServiceName == "" {
		return nil
	}
	return p.SelfRecordsFunc(service(cfg))
}

// echCmd is `lamina ech keygen`: add a new current ECH key to the state
// directory and print the ECHConfigList to publish.
func echCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "keygen" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Fprintln(stdout, "Usage: lamina ech keygen [-config FILE] [-state-dir DIR] [-public-name NAME]")
			return exitOK
		}
		fmt.Fprintln(stderr, "Usage: lamina ech keygen [-config FILE] [-state-dir DIR] [-public-name NAME]")
		return exitConfig
	}
	fs := newFlagSet("ech keygen", "ech keygen [-config FILE] [-state-dir DIR] [-public-name NAME]", stderr)
	file := fs.String("config", "", "configuration `file` giving tls.state_dir and tls.ech.public_name")
	dir := fs.String("state-dir", "", "state `directory` (overrides the config)")
	name := fs.String("public-name", "", "ECH public `name` (overrides the config)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	sd, pn := *dir, *name
	if *file != "" {
		c, err := config.Load(*file)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		sd = cmpZero(sd, stateDir(c))
		pn = cmpZero(pn, c.TLS.ECH.PublicName)
	}
	if sd == "" {
		sd = "lamina-state"
	}
	if _, ok := dns.IsDomainName(pn); pn == "" || !ok {
		fmt.Fprintln(stderr, "lamina ech keygen: a public name is needed (-public-name or tls.ech.public_name)")
		return exitConfig
	}
	list, err := tlsconf.ECHKeygen(sd, strings.TrimSuffix(pn, "."))
	if err != nil {
		fmt.Fprintf(stderr, "lamina ech keygen: %v\n", err)
		return exitRuntime
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(list))
	return exitOK
}
