package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/laminadns/lamina/tlsconf"
)

// status is what GET /status returns: for every hop, what protects it.
type status struct {
	Version   string           `json:"version"`
	Config    string           `json:"config"`
	Listeners []listenerStatus `json:"listeners"`
	TLS       *tlsStatus       `json:"tls,omitempty"`
	Routes    []routeStatus    `json:"routes"`
	Tunnels   []tunnelStatus   `json:"tunnels,omitempty"`
	Cache     any              `json:"cache,omitempty"`
}

type listenerStatus struct {
	Name       string `json:"name"`
	URL        string `json:"url"`
	Encryption string `json:"encryption"` // none, TLS 1.3, QUIC
	ACL        string `json:"acl,omitempty"`
}

type tlsStatus struct {
	CAFile        string `json:"ca_file,omitempty"`
	ECH           bool   `json:"ech"`
	ECHConfigList string `json:"ech_config_list,omitempty"`
}

type routeStatus struct {
	Zone      string   `json:"zone"`
	Group     string   `json:"group"`
	Strategy  string   `json:"strategy"`
	Upstreams []string `json:"upstreams"`
	// Path is how queries travel: "host network" or "tunnel NAME".
	Path string `json:"path"`
}

type tunnelStatus struct {
	Name           string            `json:"name"`
	Gateway        string            `json:"gateway"`
	Up             bool              `json:"up"`
	IKEUp          bool              `json:"ike_up"`
	IKEEstablished int               `json:"ike_established"`
	ChildRekeys    int               `json:"child_rekeys"`
	IKERekeys      int               `json:"ike_rekeys"`
	VirtualIPs     []string          `json:"virtual_ips,omitempty"`
	LastError      string            `json:"last_error,omitempty"`
	SAs            []saStatus        `json:"sas,omitempty"`
	PacketsIn      uint64            `json:"packets_in"`
	PacketsOut     uint64            `json:"packets_out"`
	Drops          map[string]uint64 `json:"drops,omitempty"`
}

type saStatus struct {
	SPI       string `json:"spi"`
	Direction string `json:"direction"`
	Suite     string `json:"suite"`
	Packets   uint64 `json:"packets"`
	Bytes     uint64 `json:"bytes"`
}

// statusHandler serves GET /status as JSON.
func statusHandler(h *swapHandler, tls *tlsconf.Provider, tunnels map[string]*tunnelNet) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		g := h.gen()
		cfg := g.cfg
		st := status{Version: versionString(), Config: cmpName(cfg.File())}
		for _, l := range cfg.Listeners {
			enc := "none"
			switch l.Parsed.Scheme {
			case "tls", "https":
				enc = "TLS 1.3"
				if cfg.TLS.MinVersion == "1.2" {
					enc = "TLS 1.2+"
				}
			case "h3", "quic":
				enc = "QUIC (TLS 1.3)"
			}
			st.Listeners = append(st.Listeners, listenerStatus{Name: l.Name, URL: l.URL, Encryption: enc, ACL: l.ACL})
		}
		if tls != nil {
			ts := &tlsStatus{CAFile: tls.CAFile()}
			if list := tls.ECHConfigList(); len(list) > 0 {
				ts.ECH, ts.ECHConfigList = true, base64.StdEncoding.EncodeToString(list)
			}
			st.TLS = ts
		}
		for _, r := range cfg.Routes {
			for _, gc := range cfg.UpstreamGroups {
				if gc.Name != r.Group {
					continue
				}
				path := "host network"
				if gc.Tunnel != "" {
					path = "tunnel " + gc.Tunnel
				}
				st.Routes = append(st.Routes, routeStatus{Zone: r.Zone, Group: gc.Name, Strategy: cmpZero(gc.Strategy, "failover"), Upstreams: gc.Upstreams, Path: path})
			}
		}
		for _, tc := range cfg.Tunnels {
			ts := tunnelStatus{Name: tc.Name, Gateway: tc.Gateway}
			if tn := tunnels[tc.Name]; tn != nil {
				if t := tn.cur.Load(); t != nil {
					s := t.Stats()
					ks := t.IKEStatus()
					ts.Up, ts.IKEUp, ts.IKEEstablished = s.Up, ks.Up, ks.Ups
					ts.ChildRekeys, ts.IKERekeys = ks.Info.ChildRekeys, ks.Info.IKERekeys
					ts.VirtualIPs = addrStrings(ks.Info.VirtualIPs)
					if ks.LastErr != nil {
						ts.LastError = ks.LastErr.Error()
					}
					ts.PacketsIn, ts.PacketsOut, ts.Drops = s.In.Packets, s.Out.Packets, s.Drops()
					for _, sa := range s.SAs {
						ts.SAs = append(ts.SAs, saStatus{
							SPI: fmt.Sprintf("%08x", sa.SPI), Direction: strings.ToLower(fmt.Sprint(sa.Direction)),
							Suite: sa.Suite, Packets: sa.Packets, Bytes: sa.Bytes,
						})
					}
				}
			}
			st.Tunnels = append(st.Tunnels, ts)
		}
		if g.cache != nil {
			st.Cache = g.cache.Stats()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(st)
	}
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
