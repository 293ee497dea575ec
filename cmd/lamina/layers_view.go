package main

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/cache"
	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// layersView is GET /layers: every hop a query or a proxied connection
// crosses and what protected it, from live counters only.
type layersView struct {
	Clients   []clientLayer   `json:"clients"`   // client → Lamina, per listener
	Upstreams []upstreamLayer `json:"upstreams"` // Lamina → upstream, per upstream URL
	Tunnels   []tunnelLayer   `json:"tunnels"`   // Lamina → internal servers
	Proxies   []proxyLayer    `json:"proxies"`   // proxied connections
	// LocalZones are answered by Lamina itself: no upstream hop.
	LocalZones []string     `json:"local_zones,omitempty"`
	Cache      *cache.Stats `json:"cache,omitempty"`
}

type upstreamLayer struct {
	Group     string   `json:"group"`
	Zones     []string `json:"zones"`
	URL       string   `json:"url"`
	Transport string   `json:"transport"`
	// Path is "host network" or "tunnel NAME": a tunnelled upstream's
	// packets are ESP-in-UDP to the gateway, whatever its transport.
	Path      string            `json:"path"`
	Tunnel    string            `json:"tunnel,omitempty"`
	ECHPolicy string            `json:"ech_policy,omitempty"`
	Up        *bool             `json:"up,omitempty"` // the group's health mark, once known
	Exchanges map[string]uint64 `json:"exchanges,omitempty"`
	// Connections opened, by whether ECH was accepted (stream transports).
	Connections map[string]uint64 `json:"connections,omitempty"`
}

type tunnelLayer struct {
	Name  string `json:"name"`
	State string `json:"state"` // up, rekeying/re-establishing (IKE down), connecting
	// Outer: the ESP-in-UDP socket's addresses; Inner: the addresses
	// inside the tunnel (virtual IP or inner_address) and the agreed
	// remote traffic selectors.
	OuterLocal     string            `json:"outer_local,omitempty"`
	OuterRemote    string            `json:"outer_remote"`
	InnerLocal     []string          `json:"inner_local,omitempty"`
	InnerRemote    []string          `json:"inner_remote,omitempty"`
	IKEEstablished int               `json:"ike_established"`
	ChildRekeys    int               `json:"child_rekeys"`
	IKERekeys      int               `json:"ike_rekeys"`
	LastError      string            `json:"last_error,omitempty"`
	SAs            []saLayer         `json:"sas"`
	BytesIn        uint64            `json:"bytes_in"`
	BytesOut       uint64            `json:"bytes_out"`
	PacketsIn      uint64            `json:"packets_in"`
	PacketsOut     uint64            `json:"packets_out"`
	Drops          map[string]uint64 `json:"drops,omitempty"`
}

type saLayer struct {
	SPI       string `json:"spi"`
	Direction string `json:"direction"`
	Suite     string `json:"suite"`
	State     string `json:"state"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

type proxyLayer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Path    string `json:"path"` // "tunnel NAME" (ESP) or "host network"
	Dials   uint64 `json:"dials"`
	Failed  uint64 `json:"dial_failures"`
	// TLS counts connections whose client started with a TLS handshake:
	// TLS inside ESP when Path is a tunnel. Plain counts the others.
	TLS   uint64 `json:"tls"`
	Plain uint64 `json:"plain"`
}

// layers builds the view from the current generation and the counters.
func (a *app) layers() layersView {
	g := a.h.gen()
	cfg := g.cfg
	v := layersView{Clients: []clientLayer{}, Upstreams: []upstreamLayer{}, Tunnels: []tunnelLayer{}, Proxies: []proxyLayer{}}
	urls := map[string]string{}
	for _, l := range cfg.Listeners {
		urls[l.Name] = l.URL
	}
	v.Clients = a.sh.layers.clientLayers(urls)

	m := upstreamMetricValues(a.sh.reg)
	for _, gc := range cfg.UpstreamGroups {
		var zones []string
		for _, r := range cfg.Routes {
			if r.Group == gc.Name {
				zones = append(zones, r.Zone)
			}
		}
		if len(zones) == 0 {
			continue
		}
		for _, raw := range gc.Upstreams {
			ul := upstreamLayer{Group: gc.Name, Zones: zones, URL: raw, Transport: strings.SplitN(raw, ":", 2)[0],
				Path: "host network", Tunnel: gc.Tunnel, ECHPolicy: gc.ECH}
			if gc.Tunnel != "" {
				ul.Path = "tunnel " + gc.Tunnel
			}
			if ul.Transport != "tls" && ul.Transport != "https" && ul.Transport != "h3" && ul.Transport != "quic" {
				ul.ECHPolicy = ""
			}
			mv := m[raw]
			if mv == nil {
				mv = m[canonicalUpstream(raw)]
			}
			if mv != nil {
				ul.Up, ul.Exchanges, ul.Connections = mv.up, mv.exchanges, mv.conns
			}
			v.Upstreams = append(v.Upstreams, ul)
		}
	}

	for _, tc := range cfg.Tunnels {
		tl := tunnelLayer{Name: tc.Name, State: "connecting", OuterRemote: tc.Gateway, SAs: []saLayer{}}
		if tc.InnerAddress.IsValid() {
			tl.InnerLocal = []string{tc.InnerAddress.String()}
		}
		for _, p := range tc.RemoteSubnets {
			tl.InnerRemote = append(tl.InnerRemote, p.String())
		}
		if tn := a.sh.tunnels[tc.Name]; tn != nil {
			tn.fill(&tl)
		}
		v.Tunnels = append(v.Tunnels, tl)
	}

	for _, pc := range cfg.Proxies {
		pl := proxyLayer{Name: pc.Name, Address: pc.Address, Path: "host network"}
		if pc.Tunnel != "" {
			pl.Path = "tunnel " + pc.Tunnel
		}
		c := a.sh.layers.proxy(pc.Name)
		pl.Dials, pl.Failed, pl.TLS, pl.Plain = c.dials.Load(), c.failed.Load(), c.tls.Load(), c.plain.Load()
		v.Proxies = append(v.Proxies, pl)
	}
	for _, z := range cfg.LocalZones {
		v.LocalZones = append(v.LocalZones, dns.Fqdn(z.Name))
	}
	if g.cache != nil {
		st := g.cache.Stats()
		v.Cache = &st
	}
	return v
}

// fill adds the live tunnel state to tl.
func (n *tunnelNet) fill(tl *tunnelLayer) {
	if a := n.outerLocal.Load(); a != nil {
		tl.OuterLocal = *a
	}
	t := n.cur.Load()
	if t == nil {
		return
	}
	s, ks := t.Stats(), t.IKEStatus()
	switch {
	case s.Up && ks.Up:
		tl.State = "up"
	case ks.Up:
		tl.State = "no outbound SA"
	default:
		tl.State = "re-establishing"
	}
	tl.IKEEstablished, tl.ChildRekeys, tl.IKERekeys = ks.Ups, ks.Info.ChildRekeys, ks.Info.IKERekeys
	if ks.LastErr != nil {
		tl.LastError = ks.LastErr.Error()
	}
	if len(ks.Info.VirtualIPs) > 0 {
		tl.InnerLocal = nil
		for _, a := range ks.Info.VirtualIPs {
			tl.InnerLocal = append(tl.InnerLocal, a.String())
		}
	}
	if len(ks.Info.Remote) > 0 {
		tl.InnerRemote = nil
		for _, sel := range ks.Info.Remote {
			tl.InnerRemote = append(tl.InnerRemote, selectorString(sel))
		}
	}
	for _, sa := range s.SAs {
		tl.SAs = append(tl.SAs, saLayer{SPI: fmt.Sprintf("%08x", sa.SPI), Direction: strings.ToLower(fmt.Sprint(sa.Direction)),
			Suite: sa.Suite, State: strings.ToLower(fmt.Sprint(sa.State)), Packets: sa.Packets, Bytes: sa.Bytes})
	}
	tl.BytesIn, tl.BytesOut, tl.PacketsIn, tl.PacketsOut = s.In.Bytes, s.Out.Bytes, s.In.Packets, s.Out.Packets
	tl.Drops = map[string]uint64{}
	for k, v := range s.Drops() {
		if v > 0 {
			tl.Drops[k] = v
		}
	}
}

// selectorString shows a traffic selector as a prefix when it is one, with
// its protocol and ports when they are restricted.
func selectorString(s wire.Selector) string {
	r := s.StartAddr.String() + "-" + s.EndAddr.String()
	for bits := 0; bits <= s.StartAddr.BitLen(); bits++ {
		p := netip.PrefixFrom(s.StartAddr, bits)
		if p.Masked().Addr() == s.StartAddr && lastAddr(p) == s.EndAddr {
			r = p.String()
			break
		}
	}
	if s.IPProto != 0 {
		r += fmt.Sprintf(" proto %d", s.IPProto)
	}
	if s.StartPort != 0 || s.EndPort != 65535 {
		r += fmt.Sprintf(" ports %d-%d", s.StartPort, s.EndPort)
	}
	return r
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

type upstreamValues struct {
	up        *bool
	exchanges map[string]uint64
	conns     map[string]uint64
}

// upstreamMetricValues reads package upstream's metrics back, by upstream
// URL: the health mark, exchanges by result and connections by ECH.
func upstreamMetricValues(g prometheus.Gatherer) map[string]*upstreamValues {
	out := map[string]*upstreamValues{}
	if g == nil {
		return out
	}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	get := func(name string) *upstreamValues {
		if out[name] == nil {
			out[name] = &upstreamValues{}
		}
		return out[name]
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			u := labels["upstream"]
			if u == "" {
				continue
			}
			switch mf.GetName() {
			case "lamina_upstream_up":
				b := mt.GetGauge().GetValue() == 1
				get(u).up = &b
			case "lamina_upstream_exchanges_total":
				if n := uint64(mt.GetCounter().GetValue()); n > 0 {
					uv := get(u)
					if uv.exchanges == nil {
						uv.exchanges = map[string]uint64{}
					}
					uv.exchanges[labels["result"]] = n
				}
			case "lamina_upstream_connections_total":
				uv := get(u)
				if uv.conns == nil {
					uv.conns = map[string]uint64{}
				}
				uv.conns["ech_"+labels["ech"]] = uint64(mt.GetCounter().GetValue())
			}
		}
	}
	return out
}

// canonicalUpstream is the URL form package upstream labels metrics with:
// the default port made explicit, DoH's default path added.
func canonicalUpstream(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Port() == "" {
		if p, ok := map[string]string{"udp": "53", "tcp": "53", "tls": "853", "quic": "853", "https": "443", "h3": "443"}[u.Scheme]; ok {
			u.Host = net.JoinHostPort(u.Hostname(), p)
		}
	}
	if (u.Scheme == "https" || u.Scheme == "h3") && (u.Path == "" || u.Path == "/") {
		u.Path = "/dns-query"
	}
	return u.String()
}
