package tlsconf

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Service describes how Lamina is reached, for the records it publishes
// about itself. Zero ports mean the transport is not offered.
type Service struct {
	// Name is the service's hostname (dns.example.net). The records name it
	// as target; without it SelfRecords returns nil, since RFC 9462 forbids
	// "." as the target of _dns.resolver.arpa.
	Name string

	TTL     uint32 // zero means 300 s; keep it well under ECHConfig.Grace
	DoHPort uint16 // h2 (and h3 when H3) on this TCP/UDP port
	H3      bool
	DoHPath string // zero means /dns-query
	DoTPort uint16
	DoQPort uint16

	// IPv4 and IPv6 become ipv4hint/ipv6hint.
	IPv4, IPv6 []netip.Addr
}

// SelfRecords returns the HTTPS record for s.Name and the SVCB records for
// _dns.<s.Name> and _dns.resolver.arpa (RFC 9461, RFC 9462), each carrying the
// current ECHConfigList when ECH is on. Call it per query (it is cheap): the
// ech value follows key rotation. The records are new on every call.
func (p *Provider) SelfRecords(s Service) []dns.RR {
	var ech []byte
	if p != nil {
		ech = p.ECHConfigList()
	}
	return selfRecords(s, ech)
}

// SelfRecordsFunc returns a cheap func for resolver.Config.SelfRecords: it
// builds the records of SelfRecords once and again only when the ECH key
// rotates. The returned slice is shared between calls: callers must not
// modify it or its records.
func (p *Provider) SelfRecordsFunc(s Service) func() []dns.RR {
	type built struct {
		ech []byte
		rrs []dns.RR
	}
	var cur atomic.Pointer[built]
	return func() []dns.RR {
		var ech []byte
		if p != nil {
			ech = p.ECHConfigList()
		}
		if b := cur.Load(); b != nil && bytes.Equal(b.ech, ech) {
			return b.rrs
		}
		b := &built{ech: ech, rrs: selfRecords(s, ech)}
		cur.Store(b)
		return b.rrs
	}
}

func selfRecords(s Service, ech []byte) []dns.RR {
	if s.Name == "" {
		return nil
	}
	name := dns.Fqdn(strings.ToLower(s.Name))
	if s.TTL == 0 {
		s.TTL = 300
	}
	if s.DoHPath == "" {
		s.DoHPath = "/dns-query"
	}
	common := func(kv []dns.SVCBKeyValue) []dns.SVCBKeyValue {
		if len(s.IPv4) > 0 {
			kv = append(kv, &dns.SVCBIPv4Hint{Hint: ips(s.IPv4)})
		}
		if len(s.IPv6) > 0 {
			kv = append(kv, &dns.SVCBIPv6Hint{Hint: ips(s.IPv6)})
		}
		if len(ech) > 0 {
			kv = append(kv, &dns.SVCBECHConfig{ECH: append([]byte(nil), ech...)})
		}
		return kv
	}

	// The designated-resolver set (RFC 9461 §4): one SVCB per transport.
	type endpoint struct {
		alpn []string
		port uint16
		doh  bool
	}
	var eps []endpoint
	dohALPN := []string{"h2"}
	if s.H3 {
		dohALPN = []string{"h3", "h2"}
	}
	if s.DoHPort != 0 {
		eps = append(eps, endpoint{dohALPN, s.DoHPort, true})
	}
	if s.DoTPort != 0 {
		eps = append(eps, endpoint{[]string{"dot"}, s.DoTPort, false})
	}
	if s.DoQPort != 0 {
		eps = append(eps, endpoint{[]string{"doq"}, s.DoQPort, false})
	}
	var out []dns.RR
	if s.DoHPort != 0 {
		kv := []dns.SVCBKeyValue{&dns.SVCBAlpn{Alpn: dohALPN}}
		if s.DoHPort != 443 {
			kv = append(kv, &dns.SVCBPort{Port: s.DoHPort})
		}
		out = append(out, &dns.HTTPS{SVCB: dns.SVCB{
			Hdr:      dns.RR_Header{Name: name, Rrtype: dns.TypeHTTPS, Class: dns.ClassINET, Ttl: s.TTL},
			Priority: 1, Target: ".", Value: common(kv)}})
	}
	// Addresses for the service name itself, so that a client given only the
	// name (or the SVCB target) can connect without another resolver.
	for _, a := range s.IPv4 {
		out = append(out, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: s.TTL}, A: a.AsSlice()})
	}
	for _, a := range s.IPv6 {
		out = append(out, &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: s.TTL}, AAAA: a.AsSlice()})
	}
	for _, owner := range []string{"_dns." + name, "_dns.resolver.arpa."} {
		for i, ep := range eps {
			// port is mandatory for DNS SVCB (RFC 9461 §5.1), so always sent.
			kv := []dns.SVCBKeyValue{&dns.SVCBAlpn{Alpn: ep.alpn}, &dns.SVCBPort{Port: ep.port}}
			if ep.doh {
				kv = append(kv, &dns.SVCBDoHPath{Template: s.DoHPath + "{?dns}"})
			}
			out = append(out, &dns.SVCB{
				Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeSVCB, Class: dns.ClassINET, Ttl: s.TTL},
				Priority: uint16(i + 1), Target: name, Value: common(kv)})
		}
	}
	return out
}

func ips(a []netip.Addr) []net.IP {
	out := make([]net.IP, len(a))
	for i, ip := range a {
		out[i] = net.IP(ip.AsSlice())
	}
	return out
}
