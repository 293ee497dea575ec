package upstream

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ErrNoDesignated means a plain DNS server named no encrypted resolver that
// could be verified (RFC 9462).
var ErrNoDesignated = errors.New("upstream: no verified designated resolver")

// DiscoverDesignated asks the plain DNS server plain, reachable at ip, for
// its designated encrypted resolvers (RFC 9462 §4: SVCB records of
// _dns.resolver.arpa) and returns an upstream for each one that passes
// verified discovery (§4.2): it answers on ip and its certificate is valid
// for the SVCB target name AND lists ip among its IP addresses. Upstreams
// come in SVCB priority order; the caller owns them (Close). opts supplies
// the TLS roots, network, metrics and so on; its ServerName is ignored.
//
// A caller upgrading a configured Do53 upstream puts these first and keeps
// the plain one as a fallback, or replaces it, as its policy says.
func DiscoverDesignated(ctx context.Context, plain Upstream, ip netip.Addr, opts Options) ([]Upstream, error) {
	req := new(dns.Msg)
	req.SetQuestion("_dns.resolver.arpa.", dns.TypeSVCB)
	req.SetEdns0(1232, false)
	resp, err := plain.Exchange(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("discovering designated resolvers of %s: %w", plain, err)
	}
	var recs []*dns.SVCB
	for _, rr := range resp.Answer {
		if s, ok := rr.(*dns.SVCB); ok && s.Priority > 0 && s.Target != "." {
			recs = append(recs, s)
		}
	}
	slices.SortStableFunc(recs, func(a, b *dns.SVCB) int { return int(a.Priority) - int(b.Priority) })

	var ups []Upstream
	var errs []error
	for _, rec := range recs {
		for _, rawURL := range designatedURLs(rec, ip) {
			u, err := verifiedUpstream(ctx, rawURL, strings.TrimSuffix(rec.Target, "."), ip, opts)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			ups = append(ups, u)
		}
	}
	if len(ups) == 0 {
		return nil, errors.Join(append([]error{ErrNoDesignated}, errs...)...)
	}
	return ups, nil
}

// designatedURLs maps one SVCB record to upstream URLs on ip, one per ALPN
// protocol Lamina speaks (RFC 9461 §3: dot, doq, h2, h3 with dohpath).
func designatedURLs(rec *dns.SVCB, ip netip.Addr) []string {
	var alpns []string
	port, path := 0, "/dns-query"
	for _, kv := range rec.Value {
		switch v := kv.(type) {
		case *dns.SVCBAlpn:
			alpns = v.Alpn
		case *dns.SVCBPort:
			port = int(v.Port)
		case *dns.SVCBDoHPath:
			path, _, _ = strings.Cut(v.Template, "{") // drop "{?dns}"
		}
	}
	hostport := func(def int) string {
		return net.JoinHostPort(ip.String(), strconv.Itoa(cmp.Or(port, def)))
	}
	var urls []string
	for _, a := range alpns {
		switch a {
		case "dot":
			urls = append(urls, "tls://"+hostport(853))
		case "doq":
			urls = append(urls, "quic://"+hostport(853))
		case "h2":
			urls = append(urls, "https://"+hostport(443)+path)
		case "h3":
			urls = append(urls, "h3://"+hostport(443)+path)
		}
	}
	return urls
}

// verifiedUpstream builds the upstream for rawURL with the certificate
// checks of verified discovery, and keeps it only when it answers.
func verifiedUpstream(ctx context.Context, rawURL, target string, ip netip.Addr, opts Options) (Upstream, error) {
	base := &tls.Config{}
	if opts.TLSConfig != nil {
		base = opts.TLSConfig.Clone()
	}
	next := base.VerifyConnection
	base.VerifyConnection = func(cs tls.ConnectionState) error {
		if next != nil {
			if err := next(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 || !slices.ContainsFunc(cs.PeerCertificates[0].IPAddresses, func(a net.IP) bool {
			b, ok := netip.AddrFromSlice(a)
			return ok && b.Unmap() == ip.Unmap()
		}) {
			return fmt.Errorf("upstream: designated resolver certificate does not cover %s (RFC 9462 §4.2)", ip)
		}
		return nil
	}
	opts.TLSConfig, opts.ServerName = base, target
	u, err := Parse(rawURL, opts)
	if err != nil {
		return nil, err
	}
	probe := newProbe(".")
	if _, err := u.Exchange(ctx, probe); err != nil {
		u.Close()
		return nil, fmt.Errorf("verifying %s as %s: %w", rawURL, target, err)
	}
	return u, nil
}
