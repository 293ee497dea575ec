package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bootstrap TTL bounds: a zero TTL would resolve on every dial, a week-long
// one would pin a moved server.
const (
	minBootstrapTTL = 30 * time.Second
	maxBootstrapTTL = time.Hour
)

// endpoint is where an upstream connects: an IP literal, fixed IPs, or a
// hostname resolved through bootstrap upstreams (never through the upstream
// itself, which would need its own address first) and re-resolved when the
// answer's TTL runs out.
type endpoint struct {
	host  string // URL host: IP literal or hostname
	port  uint16
	fixed []netip.Addr
	boot  Upstream

	mu      sync.Mutex
	addrs   []netip.Addr
	expires time.Time
}

func newEndpoint(host string, port uint16, o Options) (*endpoint, error) {
	e := &endpoint{host: host, port: port}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, fmt.Errorf("host %q: zoned addresses are not supported", host)
		}
		e.host, e.fixed = ip.Unmap().String(), []netip.Addr{ip.Unmap()}
		return e, nil
	}
	if _, ok := dns.IsDomainName(host); !ok || host == "" {
		return nil, fmt.Errorf("host %q is neither an IP address nor a hostname", host)
	}
	switch {
	case len(o.IPs) > 0:
		e.fixed = o.IPs
	case o.Bootstrap != nil:
		e.boot = o.Bootstrap
	default:
		return nil, fmt.Errorf("host %q is not an IP address: configure fixed IPs or bootstrap servers", host)
	}
	return e, nil
}

// fixedEndpoint is an IP literal endpoint.
func fixedEndpoint(a netip.AddrPort) *endpoint {
	ip := a.Addr().Unmap()
	return &endpoint{host: ip.String(), port: a.Port(), fixed: []netip.Addr{ip}}
}

// hostname reports whether the URL names the server by name (then it is
// also the TLS server name by default).
func (e *endpoint) hostname() bool {
	_, err := netip.ParseAddr(e.host)
	return err != nil
}

// resolve returns the addresses to dial, in preference order.
func (e *endpoint) resolve(ctx context.Context) ([]netip.AddrPort, error) {
	addrs := e.fixed
	if e.boot != nil {
		var err error
		if addrs, err = e.lookup(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		out[i] = netip.AddrPortFrom(a, e.port)
	}
	return out, nil
}

func (e *endpoint) lookup(ctx context.Context) ([]netip.Addr, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if len(e.addrs) > 0 && now.Before(e.expires) {
		return e.addrs, nil
	}
	addrs, ttl, err := e.query(ctx)
	if err != nil {
		if len(e.addrs) > 0 { // keep serving on the old addresses
			e.expires = now.Add(minBootstrapTTL)
			return e.addrs, nil
		}
		return nil, fmt.Errorf("resolving %s through the bootstrap: %w", e.host, err)
	}
	e.addrs, e.expires = addrs, now.Add(min(max(ttl, minBootstrapTTL), maxBootstrapTTL))
	return addrs, nil
}

// query asks the bootstrap for A and AAAA at once; IPv4 is listed first.
func (e *endpoint) query(ctx context.Context) ([]netip.Addr, time.Duration, error) {
	type res struct {
		addrs []netip.Addr
		ttl   uint32
		err   error
	}
	var out [2]res
	var wg sync.WaitGroup
	for i, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		wg.Go(func() {
			req := new(dns.Msg)
			req.SetQuestion(dns.Fqdn(e.host), qt)
			req.SetEdns0(1232, false)
			resp, err := e.boot.Exchange(ctx, req)
			if err != nil {
				out[i].err = err
				return
			}
			out[i].ttl = uint32(maxBootstrapTTL / time.Second)
			for _, rr := range resp.Answer {
				var ip net.IP
				switch r := rr.(type) {
				case *dns.A:
					ip = r.A
				case *dns.AAAA:
					ip = r.AAAA
				default:
					continue
				}
				if a, ok := netip.AddrFromSlice(ip); ok {
					out[i].addrs = append(out[i].addrs, a.Unmap())
					out[i].ttl = min(out[i].ttl, rr.Header().Ttl)
				}
			}
		})
	}
	wg.Wait()
	addrs := append(out[0].addrs, out[1].addrs...)
	if len(addrs) == 0 {
		return nil, 0, errors.Join(errors.New("no A or AAAA records"), out[0].err, out[1].err)
	}
	ttl := uint32(maxBootstrapTTL / time.Second)
	for _, r := range out {
		if len(r.addrs) > 0 {
			ttl = min(ttl, r.ttl)
		}
	}
	return addrs, time.Duration(ttl) * time.Second, nil
}

// dial connects to the first address that answers.
func (e *endpoint) dial(ctx context.Context, n Network, network string) (net.Conn, error) {
	addrs, err := e.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, err := n.DialContext(ctx, network, a.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// hostPort is the URL authority for String: host, bracketed when IPv6, and
// port.
func (e *endpoint) hostPort() string { return net.JoinHostPort(e.host, strconv.Itoa(int(e.port))) }
