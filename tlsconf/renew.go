package tlsconf

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// renewCheckInterval bounds how often handshakes compare the generated
// certificates' expiry with the clock.
const renewCheckInterval = time.Hour

// caWarnBefore is how long before the local CA expires Lamina starts warning.
// The CA is never replaced while running: clients were told to trust it, so a
// new one is an operator's decision (delete ca.pem and ca-key.pem and restart).
const caWarnBefore = 365 * 24 * time.Hour

// generated is a certificate Lamina issued from its local CA and keeps valid
// itself. Certificates from the operator's files are never in this list.
type generated struct {
	ca                *localCA
	certPath, keyPath string
	names             []string
	ips               []netip.Addr
	file              *certFile
}

// renewDue reports whether a generated certificate has entered its last month,
// the point at which ensureServerCert issues a new one.
func (p *Provider) renewDue(now time.Time) bool {
	for _, g := range p.gen {
		if !now.AddDate(0, 1, 0).Before(g.file.cert.Load().Leaf.NotAfter) {
			return true
		}
	}
	return false
}

// maybeRenew runs on every handshake. Once per renewCheckInterval one
// handshake compares expiry dates; when a renewal is due it starts one in the
// background, so no handshake waits for key generation and no goroutine lives
// between renewals.
func (p *Provider) maybeRenew() {
	if len(p.gen) == 0 {
		return
	}
	now := p.cfg.Now()
	next := p.renewCheck.Load()
	if now.UnixNano() < next || !p.renewCheck.CompareAndSwap(next, now.Add(renewCheckInterval).UnixNano()) {
		return
	}
	if !p.renewDue(now) || !p.renewing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.renewing.Store(false)
		if err := p.renew(); err != nil {
			p.log.Warn("certificate renewal failed; serving the current one and retrying within the hour", "err", err)
		}
	}()
}

// renew re-issues the generated certificates that are due (or no longer match
// the CA, names or addresses), writing each pair atomically, and swaps them in
// for new handshakes. Established connections keep their certificate.
func (p *Provider) renew() error {
	p.renewMu.Lock()
	defer p.renewMu.Unlock()
	now := p.cfg.Now()
	var errs error
	for _, g := range p.gen {
		issued, err := g.ca.ensureServerCert(g.certPath, g.keyPath, g.names, g.ips, now)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("tlsconf: renewing %s: %w", g.certPath, err))
			continue
		}
		if !issued {
			continue
		}
		if err := g.file.reload(true); err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		p.log.Info("renewed certificate from the local CA", "cert", g.certPath,
			"not_after", g.file.cert.Load().Leaf.NotAfter)
		p.warnCA(g.ca, now)
	}
	return errs
}

// warnCA logs when the local CA is in its last year. Clients fail once it
// expires; Lamina replaces an expired CA only at start.
func (p *Provider) warnCA(ca *localCA, now time.Time) {
	if now.Add(caWarnBefore).Before(ca.cert.NotAfter) {
		return
	}
	p.log.Warn("local CA expires soon; clients trusting it will then fail. Delete it and restart "+
		"to generate a new one, then have clients trust the new CA",
		"ca", ca.path, "not_after", ca.cert.NotAfter)
}
