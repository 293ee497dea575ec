package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/proxy"
	"github.com/laminadns/lamina/resolver"
)

// startProxy starts one proxies entry. Names in requests are resolved by
// Lamina's own policy (local zones, routes, the tunnel), so a client of the
// proxy sees the same answers as a DNS client.
func startProxy(ctx context.Context, cfg *config.Config, pc config.Proxy, h resolver.Handler, sh *shared, reg prometheus.Registerer) (*proxy.Server, error) {
	fail := func(err error) (*proxy.Server, error) { return nil, fmt.Errorf("proxy %s: %w", pc.Name, err) }
	var dialer proxy.Dialer = &net.Dialer{}
	if pc.Tunnel != "" {
		t := sh.tunnels[pc.Tunnel]
		if t == nil {
			return fail(fmt.Errorf("tunnel %q is not running", pc.Tunnel))
		}
		dialer = t
	}
	pcfg := proxy.Config{
		Dialer: sh.layers.dialer(pc.Name, dialer),
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return lookup(ctx, h, "proxy:"+pc.Name, host)
		},
		MaxConns:    pc.MaxConns,
		IdleTimeout: pc.IdleTimeout.D(),
		DialTimeout: pc.DialTimeout.D(),
		Logger:      sh.log.With("component", "proxy", "proxy", pc.Name),
	}
	for _, p := range pc.Ports {
		pcfg.Ports = append(pcfg.Ports, uint16(p))
	}
	if pc.ACL != "" {
		for _, a := range cfg.ACLs {
			if a.Name == pc.ACL {
				acl := aclRules(a)
				pcfg.Allow = acl.Allowed
			}
		}
	}
	m, err := proxy.NewMetrics(reg, pc.Name)
	if err != nil {
		return fail(err)
	}
	pcfg.Metrics = m
	srv, err := proxy.New(pcfg)
	if err != nil {
		return fail(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", pc.Address)
	if err != nil {
		return fail(err)
	}
	go srv.Serve(ln)
	sh.log.Info("proxy listening", "proxy", pc.Name, "address", pc.Address, "tunnel", pc.Tunnel)
	return srv, nil
}

// lookup resolves host to its A and AAAA addresses through h, as a query
// from loopback on the named pseudo-listener.
func lookup(ctx context.Context, h resolver.Handler, listener, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(host), qtype)
		m.SetEdns0(resolver.DefaultUDPSize, false)
		resp, err := h.ServeDNS(ctx, &resolver.Query{
			Msg:       m,
			Client:    netip.MustParseAddrPort("127.0.0.1:0"),
			Transport: resolver.TCP,
			Listener:  listener,
			MaxSize:   dns.MaxMsgSize,
		})
		if err == nil && resp.Rcode != dns.RcodeSuccess {
			err = fmt.Errorf("%s %s: %s", host, dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode])
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range resp.Answer {
			switch r := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(r.A); ok {
					addrs = append(addrs, a.Unmap())
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(r.AAAA); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) == 0 {
		if len(errs) == 0 {
			errs = append(errs, fmt.Errorf("%s has no addresses", host))
		}
		return nil, errors.Join(errs...)
	}
	return addrs, nil
}
