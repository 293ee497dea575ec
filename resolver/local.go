package resolver

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// LocalZone is a zone Lamina answers itself, authoritatively (AA set): missing
// names get NXDOMAIN and missing types NODATA, both with the zone's SOA (RFC
// 2308); CNAMEs into local data are followed; "*.name" records are wildcards
// (RFC 4592). A name with local data answers every other type from it too, so
// a local A record also hides the public HTTPS record of that name (whose
// address hints would otherwise bypass the override).
type LocalZone struct {
	Name    string   // FQDN of the apex
	Records []dns.RR // class IN, all at or under Name; see ParseRecords
}

// ParseRecords parses zone-file lines (one record each, as in RFC 1035 §5.1)
// relative to zone: "@" and relative owners are completed with zone and the
// default TTL is 3600. Every record must be at or under zone.
func ParseRecords(zone string, lines []string) ([]dns.RR, error) {
	zone = dns.Fqdn(zone)
	if _, ok := dns.IsDomainName(zone); !ok {
		return nil, fmt.Errorf("zone %q: not a domain name", zone)
	}
	var rrs []dns.RR
	for i, line := range lines {
		zp := dns.NewZoneParser(strings.NewReader(line), zone, "")
		zp.SetDefaultTTL(3600)
		n := 0
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if !dns.IsSubDomain(zone, rr.Header().Name) {
				return nil, fmt.Errorf("zone %s record %d: %s is outside the zone", zone, i+1, rr.Header().Name)
			}
			rrs = append(rrs, rr)
			n++
		}
		if err := zp.Err(); err != nil {
			return nil, fmt.Errorf("zone %s record %d: %w", zone, i+1, err)
		}
		if n != 1 {
			return nil, fmt.Errorf("zone %s record %d: want one record, got %d", zone, i+1, n)
		}
	}
	return rrs, nil
}

// zone is a LocalZone indexed by lower-cased owner name and type.
type zone struct {
	name  string // lower-case FQDN
	soa   *dns.SOA
	nodes map[string]map[uint16][]dns.RR
	ents  map[string]bool // names with no records but with descendants
	// routable built-in zones (RFC 6303 reverse zones, home.arpa) give way to
	// a route at or under them.
	routable bool
}

func newZone(name string, rrs []dns.RR) (*zone, error) {
	name = strings.ToLower(dns.Fqdn(name))
	if _, ok := dns.IsDomainName(name); !ok || name == "." {
		return nil, fmt.Errorf("local zone %q: not a domain name below the root", name)
	}
	z := &zone{name: name, nodes: map[string]map[uint16][]dns.RR{}, ents: map[string]bool{}}
	for _, rr := range rrs {
		h := rr.Header()
		owner := strings.ToLower(h.Name)
		if !dns.IsSubDomain(name, owner) {
			return nil, fmt.Errorf("local zone %s: %s is outside the zone", name, h.Name)
		}
		if h.Class != dns.ClassINET {
			return nil, fmt.Errorf("local zone %s: %s: class %s, want IN", name, h.Name, dns.ClassToString[h.Class])
		}
		if soa, ok := rr.(*dns.SOA); ok {
			if owner != name {
				return nil, fmt.Errorf("local zone %s: SOA at %s, not at the apex", name, h.Name)
			}
			z.soa = soa
		}
		if z.nodes[owner] == nil {
			z.nodes[owner] = map[uint16][]dns.RR{}
		}
		z.nodes[owner][h.Rrtype] = append(z.nodes[owner][h.Rrtype], rr)
	}
	for owner, types := range z.nodes {
		if _, ok := types[dns.TypeCNAME]; ok && len(types) > 1 {
			return nil, fmt.Errorf("local zone %s: %s has a CNAME and other data (RFC 1034 §3.6.2)", name, owner)
		}
		for off, end := dns.NextLabel(owner, 0); !end && owner[off:] != name; off, end = dns.NextLabel(owner, off) {
			if _, ok := z.nodes[owner[off:]]; !ok {
				z.ents[owner[off:]] = true
			}
		}
	}
	if z.soa == nil {
		z.soa = syntheticSOA(name)
		if z.nodes[name] == nil {
			z.nodes[name] = map[uint16][]dns.RR{}
		}
		z.nodes[name][dns.TypeSOA] = []dns.RR{z.soa}
	}
	return z, nil
}

func syntheticSOA(name string) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 3600},
		Ns:  "localhost.", Mbox: "nobody.invalid.",
		Serial: 1, Refresh: 3600, Retry: 1200, Expire: 604800, Minttl: 300,
	}
}

// negSOA is the SOA for a negative answer: TTL min(SOA TTL, MINIMUM) (RFC 2308 §5).
func (z *zone) negSOA() dns.RR {
	soa := dns.Copy(z.soa).(*dns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// node returns the RRsets at lname, following a wildcard, and whether the name
// exists at all (an empty non-terminal exists without records).
func (z *zone) node(lname string) (map[uint16][]dns.RR, bool) {
	if n, ok := z.nodes[lname]; ok {
		return n, true
	}
	if z.ents[lname] {
		return nil, true
	}
	// RFC 4592 §3.3.1: the wildcard at the closest encloser.
	for off, end := dns.NextLabel(lname, 0); !end; off, end = dns.NextLabel(lname, off) {
		ce := lname[off:]
		if n, ok := z.nodes["*."+ce]; ok {
			return n, true
		}
		if _, ok := z.nodes[ce]; ok || z.ents[ce] || ce == z.name {
			break
		}
	}
	return nil, false
}

// localData is every zone answered locally, built-in and configured.
type localData struct {
	zones map[string]*zone // by lower-case name
	wire  map[string]struct{}
}

// find returns the most specific zone containing lname (lower-case FQDN).
func (ld *localData) find(lname string) *zone {
	for off, end := 0, false; !end; off, end = dns.NextLabel(lname, off) {
		if z, ok := ld.zones[lname[off:]]; ok {
			return z
		}
	}
	return nil
}

// served returns the zone that answers lname (a lower-case FQDN) locally, or
// nil when the name is forwarded: outside local data, or in a routable
// built-in zone where rt routes it.
func (ld *localData) served(lname string, rt *router) *zone {
	z := ld.find(lname)
	if z != nil && z.routable && rt.routedUnder(z, lname) {
		return nil
	}
	return z
}

// maxChase bounds CNAME chains inside local data.
const maxChase = 8

// answer answers qtype at qname from z and the zones its CNAMEs lead to. When
// a CNAME leads to a name that is forwarded (see served), the chain so far is
// returned with the target in outside, for the caller to resolve.
func (ld *localData) answer(req *dns.Msg, z *zone, q dns.Question, rt *router) (m *dns.Msg, outside string) {
	m = reply(req)
	m.Authoritative = true
	owner, lname := q.Name, strings.ToLower(q.Name)
	for range maxChase {
		rrsets, exists := z.node(lname)
		switch {
		case !exists:
			m.Rcode = dns.RcodeNameError // also after a CNAME (RFC 6604 §2.1)
			m.Ns = append(m.Ns, z.negSOA())
			return m, ""
		case q.Qtype == dns.TypeANY && len(rrsets) > 0:
			for _, rrs := range rrsets {
				m.Answer = appendOwned(m.Answer, rrs, owner)
			}
			return m, ""
		case len(rrsets[q.Qtype]) > 0:
			m.Answer = appendOwned(m.Answer, rrsets[q.Qtype], owner)
			return m, ""
		case len(rrsets[dns.TypeCNAME]) > 0:
			cname := rrsets[dns.TypeCNAME][0]
			m.Answer = appendOwned(m.Answer, rrsets[dns.TypeCNAME], owner)
			owner = cname.(*dns.CNAME).Target
			lname = strings.ToLower(owner)
			if z = ld.served(lname, rt); z == nil {
				m.Authoritative = false
				return m, owner
			}
		default: // NODATA
			m.Ns = append(m.Ns, z.negSOA())
			return m, ""
		}
	}
	m.Rcode = dns.RcodeServerFailure
	m.Answer = nil
	return m, ""
}

// appendOwned appends copies of rrs renamed to owner (the question's spelling,
// or the name a wildcard stands for).
func appendOwned(dst, rrs []dns.RR, owner string) []dns.RR {
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		dst = append(dst, c)
	}
	return dst
}
