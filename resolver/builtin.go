package resolver

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// resolverArpa is the DDR zone (RFC 9462 §4): answered from SelfRecords or
// negatively, and never forwarded, or clients would discover the upstream and
// bypass Lamina.
const resolverArpa = "resolver.arpa."

// Special-use zones answered locally whatever the routes say (RFC 6761 §6.3
// localhost, §6.4 invalid; RFC 7686 onion; RFC 9462 resolver.arpa).
var fixedZones = map[string][]string{
	"localhost.": {
		"localhost. 3600 IN A 127.0.0.1",
		"localhost. 3600 IN AAAA ::1",
		"*.localhost. 3600 IN A 127.0.0.1",
		"*.localhost. 3600 IN AAAA ::1",
	},
	"invalid.":                nil,
	"onion.":                  nil,
	resolverArpa:              nil,
	"1.0.0.127.in-addr.arpa.": {"1.0.0.127.in-addr.arpa. 3600 IN PTR localhost."},
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.": {
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 3600 IN PTR localhost.",
	},
}

// routableZones are locally served (RFC 6303, RFC 7793, RFC 8375 home.arpa)
// with NXDOMAIN unless a route or a local zone at or under them says where
// they live: private reverse lookups must not leak to public upstreams.
func routableZones() []string {
	zs := []string{
		"10.in-addr.arpa.", "168.192.in-addr.arpa.", "254.169.in-addr.arpa.",
		"0.in-addr.arpa.", "127.in-addr.arpa.", "255.255.255.255.in-addr.arpa.",
		"2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.",
		"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
		"d.f.ip6.arpa.", "8.e.f.ip6.arpa.", "9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
		"8.b.d.0.1.0.0.2.ip6.arpa.", "home.arpa.",
	}
	for i := 16; i <= 31; i++ {
		zs = append(zs, fmt.Sprintf("%d.172.in-addr.arpa.", i))
	}
	for i := 64; i <= 127; i++ {
		zs = append(zs, fmt.Sprintf("%d.100.in-addr.arpa.", i))
	}
	return zs
}

// newLocalData builds the built-in zones and the configured ones; a
// configured zone replaces a built-in of the same name, except resolver.arpa.
func newLocalData(cfg []LocalZone) (*localData, error) {
	ld := &localData{zones: map[string]*zone{}, wire: map[string]struct{}{}}
	for name, lines := range fixedZones {
		rrs, err := ParseRecords(name, lines)
		if err != nil {
			return nil, err
		}
		z, err := newZone(name, rrs)
		if err != nil {
			return nil, err
		}
		ld.zones[z.name] = z
	}
	ld.zones[resolverArpa].ents["_dns."+resolverArpa] = true
	for _, name := range routableZones() {
		z, _ := newZone(name, nil) // fixed, valid names
		z.routable = true
		ld.zones[z.name] = z
	}
	seen := map[string]bool{}
	for _, lz := range cfg {
		z, err := newZone(lz.Name, lz.Records)
		if err != nil {
			return nil, err
		}
		if dns.IsSubDomain(resolverArpa, z.name) {
			return nil, fmt.Errorf("local zone %s: %s is reserved for DDR", lz.Name, resolverArpa)
		}
		if seen[z.name] {
			return nil, fmt.Errorf("local zone %s: configured twice", lz.Name)
		}
		seen[z.name] = true
		ld.zones[z.name] = z
	}
	var buf [256]byte
	for name := range ld.zones {
		n, err := dns.PackDomainName(name, buf[:], 0, nil, false)
		if err != nil {
			return nil, fmt.Errorf("local zone %s: %w", name, err)
		}
		ld.wire[string(buf[:n])] = struct{}{}
	}
	return ld, nil
}

// isLocalWire reports whether the lower-cased wire-format name in name falls
// in a local zone. offs are the offsets of its labels. It does not allocate.
func (ld *localData) isLocalWire(name []byte, offs []uint8) bool {
	for _, off := range offs {
		if _, ok := ld.wire[string(name[off:])]; ok {
			return true
		}
	}
	return false
}

// selfAnswer answers from Lamina's own records when one matches the question's
// name and type (or, for ANY, its name). It returns nil otherwise.
func selfAnswer(req *dns.Msg, self []dns.RR, q dns.Question) *dns.Msg {
	var m *dns.Msg
	for _, rr := range self {
		h := rr.Header()
		if (h.Rrtype != q.Qtype && q.Qtype != dns.TypeANY) || !strings.EqualFold(h.Name, q.Name) {
			continue
		}
		if m == nil {
			m = reply(req)
			m.Authoritative = true
		}
		m.Answer = appendOwned(m.Answer, []dns.RR{rr}, q.Name)
	}
	return m
}
