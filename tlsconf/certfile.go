package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certFile is a certificate and key pair on disk that is re-read when either
// file changes. Handshakes check the files' stamps at most once per interval;
// a failed reload keeps the previous certificate, so a half-written file never
// breaks service.
type certFile struct {
	certPath, keyPath string
	interval          time.Duration
	now               func() time.Time
	warn              func(string, ...any)

	cert    atomic.Pointer[tls.Certificate]
	checked atomic.Int64 // UnixNano of the last stat

	mu    sync.Mutex // serialises reloads
	stamp [2]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func newCertFile(certPath, keyPath string, interval time.Duration, now func() time.Time, warn func(string, ...any)) (*certFile, error) {
	c := &certFile{certPath: certPath, keyPath: keyPath, interval: interval, now: now, warn: warn}
	if err := c.reload(true); err != nil {
		return nil, err
	}
	return c, nil
}

// get returns the current certificate, reloading it first when the files
// changed since the last check.
func (c *certFile) get() *tls.Certificate {
	now := c.now().UnixNano()
	// The swap elects one handshake per interval to stat the files; the
	// others go on with the current certificate.
	if last := c.checked.Load(); now-last >= int64(c.interval) && c.checked.CompareAndSwap(last, now) {
		if err := c.reload(false); err != nil {
			c.warn("certificate reload failed; keeping the previous one", "cert", c.certPath, "err", err)
		}
	}
	return c.cert.Load()
}

// reload re-reads the pair when its stamps changed, or always when force.
func (c *certFile) reload(force bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked.Store(c.now().UnixNano())
	var st [2]fileStamp
	for i, p := range []string{c.certPath, c.keyPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("tlsconf: %w", err)
		}
		st[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	if !force && st == c.stamp {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("tlsconf: loading %s: %w", c.certPath, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tlsconf: parsing %s: %w", c.certPath, err)
		}
	}
	c.cert.Store(&cert)
	c.stamp = st
	return nil
}
