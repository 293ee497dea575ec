package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// NewDoH3 returns a DoH upstream over HTTP/3 (RFC 9114) at rawURL
// (h3://host[:port]/path, requests going to the https:// URL). QUIC runs
// over Options.Network, one connection carrying a stream per query.
func NewDoH3(rawURL string, opts Options) (*DoH, error) {
	opts = opts.withDefaults()
	u, ep, err := dohURL(rawURL, "h3")
	if err != nil {
		return nil, err
	}
	if ep, err = newEndpoint(ep.host, ep.port, opts); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	name := "h3://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		name += "?" + u.RawQuery
	}
	cfg, err := opts.tlsConfig(ep.host, []string{http3.NextProtoH3}, tls.VersionTLS13)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	um := opts.Metrics.forUpstream(name)
	qd := newQUICDialer(opts, ep, newECHState(opts, discoverECH(opts.Bootstrap, echHost(ep, cfg))), um)
	tr := &http3.Transport{
		TLSClientConfig:    cfg,
		QUICConfig:         qd.qcfg,
		DisableCompression: true,
		// The address is the URL's authority; qd knows the real ones.
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, qcfg *quic.Config) (*quic.Conn, error) {
			return qd.dial(ctx, tlsCfg, qcfg)
		},
	}
	closeRT := func() error { return errors.Join(tr.Close(), qd.close()) }
	return newDoH(u.String(), name, tr, closeRT, qd.dropConns, opts, um), nil
}
