package config

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Strategies are the upstream group strategies package upstream implements.
var Strategies = []string{"failover", "round_robin", "race", "fastest"}

// Validate checks every value and fills the parsed fields (Listener.Parsed,
// LocalZone.RRs). It returns Errors listing every problem found.
func (c *Config) Validate() error {
	v := &validator{c: c}
	v.listeners()
	v.groups()
	v.routes()
	v.localZones()
	v.acls()
	v.rateLimit()
	v.cache()
	v.resolver()
	v.tls()
	v.logging()
	v.admin()
	v.tunnels()
	v.proxies()
	return v.errs.err()
}

type validator struct {
	c    *Config
	errs Errors
}

// errorf reports a problem at path, located by the line it was read from;
// paths starting with "-" are command-line flags and carry no file.
func (v *validator) errorf(path, format string, args ...any) {
	file := v.c.file
	if strings.HasPrefix(path, "-") {
		file = ""
	}
	v.errs.add(file, v.c.lineOf(path), path, fmt.Sprintf(format, args...))
}

// lineOf finds the line of path or of its nearest parent that was in the file.
func (c *Config) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func (v *validator) listeners() {
	c := v.c
	if len(c.Listeners) == 0 {
		v.errorf("listeners", "at least one listener is required (in the file or with -listen)")
	}
	names := map[string]int{}
	socks := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		at := func(f string) string { return cmpOr(l.origin, p+"."+f) }
		u, err := ParseListenURL(l.URL)
		if err != nil {
			v.errorf(at("url"), "%v", err)
			continue
		}
		l.Parsed = u
		if l.Name == "" {
			l.Name = l.URL
		}
		if j, dup := names[l.Name]; dup {
			v.errorf(at("name"), "duplicate listener name %q (also listeners[%d])", l.Name, j)
		}
		names[l.Name] = i
		sock := socketProto(u.Scheme) + " " + u.Addr.String()
		if j, dup := socks[sock]; dup {
			v.errorf(at("url"), "%s is already used by listeners[%d]", sock, j)
		}
		socks[sock] = i
		if l.ACL != "" && !slices.ContainsFunc(c.ACLs, func(x ACL) bool { return x.Name == l.ACL }) {
			v.errorf(at("acl"), "unknown acl %q", l.ACL)
		}
		switch {
		case l.MaxConns < 0 || l.MaxConns > 1_000_000:
			v.errorf(at("max_conns"), "%d out of range 0-1000000", l.MaxConns)
		case l.MaxConns != 0 && (u.Scheme == "udp" || u.Scheme == "h3"):
			v.errorf(at("max_conns"), "not for %s listeners (udp has no connections; h3 is bounded by QUIC)", u.Scheme)
		}
		switch d := l.IdleTimeout.D(); {
		case d != 0 && (d < time.Second || d > 24*time.Hour):
			v.errorf(at("idle_timeout"), "%v out of range 1s-24h", d)
		case d != 0 && u.Scheme == "udp":
			v.errorf(at("idle_timeout"), "not for udp listeners (no connections)")
		}
	}
}

// socketProto is the socket a scheme binds: DoH/3 and DoQ share UDP ports with
// nothing else, DoT and DoH share TCP ports with nothing else.
func socketProto(scheme string) string {
	switch scheme {
	case "udp", "h3", "quic":
		return "udp"
	}
	return "tcp"
}

func (v *validator) groups() {
	names := map[string]bool{}
	for i, g := range v.c.UpstreamGroups {
		p := fmt.Sprintf("upstream_groups[%d]", i)
		at := func(f string) string { return cmpOr(g.origin, p+"."+f) }
		switch {
		case g.Name == "":
			v.errorf(p+".name", "name is required")
		case names[g.Name]:
			v.errorf(p+".name", "duplicate upstream group %q", g.Name)
		}
		names[g.Name] = true
		if g.Strategy != "" && !slices.Contains(Strategies, g.Strategy) {
			v.errorf(p+".strategy", "unknown strategy %q (want one of %s)", g.Strategy, strings.Join(Strategies, ", "))
		}
		if len(g.Upstreams) == 0 {
			v.errorf(at("upstreams"), "at least one upstream is required")
		}
		for k, u := range g.Upstreams {
			up := cmpOr(g.origin, fmt.Sprintf("%s.upstreams[%d]", p, k))
			if err := ValidateUpstreamURL(u); err != nil {
				v.errorf(up, "%v", err)
			} else if h := upstreamHost(u); len(g.Bootstrap) == 0 && len(g.IPs) == 0 && !isIP(h) {
				v.errorf(up, "host %q is a name: give the group bootstrap servers or ips", h)
			}
		}
		if g.Tunnel != "" && !slices.ContainsFunc(v.c.Tunnels, func(t Tunnel) bool { return t.Name == g.Tunnel }) {
			v.errorf(p+".tunnel", "unknown tunnel %q", g.Tunnel)
		}
		if g.TryTimeout > 0 && g.Timeout > 0 && g.TryTimeout > g.Timeout {
			v.errorf(p+".try_timeout", "longer than timeout %s", g.Timeout.D())
		}
		if g.ServerName != "" {
			v.domain(p+".server_name", g.ServerName)
		}
		v.readable(p+".ca_file", g.CAFile)
		for k, b := range g.Bootstrap {
			bp := fmt.Sprintf("%s.bootstrap[%d]", p, k)
			if err := ValidateUpstreamURL(b); err != nil {
				v.errorf(bp, "%v", err)
			} else if s, _, _ := strings.Cut(b, "://"); s != "udp" && s != "tcp" {
				v.errorf(bp, "bootstrap servers are plain udp:// or tcp:// upstreams")
			}
		}
		for k, pin := range g.PinSHA256 {
			if b, err := base64.StdEncoding.DecodeString(pin); err != nil || len(b) != sha256.Size {
				v.errorf(fmt.Sprintf("%s.pin_sha256[%d]", p, k), "want the base64 of a 32-byte SHA-256 digest")
			}
		}
		switch g.ECH {
		case "", "require", "opportunistic", "off":
		default:
			v.errorf(p+".ech", "unknown ECH policy %q (want require, opportunistic or off)", g.ECH)
		}
		if g.ECHConfig != "" {
			if _, err := base64.StdEncoding.DecodeString(g.ECHConfig); err != nil {
				v.errorf(p+".ech_config", "not base64: %v", err)
			}
		}
	}
}

func (v *validator) routes() {
	zones := map[string]bool{}
	for i, r := range v.c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if v.domain(cmpOr(r.origin, p+".zone"), r.Zone) {
			z := dns.CanonicalName(r.Zone)
			if zones[z] {
				v.errorf(cmpOr(r.origin, p+".zone"), "duplicate route for %q", z)
			}
			zones[z] = true
		}
		switch {
		case r.Group == "":
			v.errorf(p+".group", "group is required")
		case !slices.ContainsFunc(v.c.UpstreamGroups, func(g UpstreamGroup) bool { return g.Name == r.Group }):
			v.errorf(p+".group", "unknown upstream group %q", r.Group)
		}
	}
}

// domain reports whether s is a domain name, reporting a problem if not.
func (v *validator) domain(path, s string) bool {
	if s == "" {
		v.errorf(path, "a domain name is required")
		return false
	}
	if _, ok := dns.IsDomainName(s); !ok || strings.ContainsAny(s, " \t") {
		v.errorf(path, "%q is not a domain name", s)
		return false
	}
	return true
}

func (v *validator) localZones() {
	zones := map[string]bool{}
	for i := range v.c.LocalZones {
		z := &v.c.LocalZones[i]
		p := fmt.Sprintf("local_zones[%d]", i)
		if !v.domain(p+".name", z.Name) {
			continue
		}
		origin := dns.CanonicalName(z.Name)
		if zones[origin] {
			v.errorf(p+".name", "duplicate local zone %q", origin)
		}
		// The resolver answers resolver.arpa from its own DDR records
		// (RFC 9462) and refuses to build with a local zone there; say so
		// here, where `lamina check` and reloads see it with a line.
		if dns.IsSubDomain("resolver.arpa.", origin) {
			v.errorf(p+".name", "%s is reserved for Lamina's DDR records (RFC 9462)", origin)
		}
		zones[origin] = true
		z.RRs = z.RRs[:0]
		cname := map[string]bool{} // owner → has a CNAME; absent: no record yet
		for k, text := range z.Records {
			rp := fmt.Sprintf("%s.records[%d]", p, k)
			rr, err := parseRecord(text, origin)
			if err != nil {
				v.errorf(rp, "%v", err)
				continue
			}
			owner, t := dns.CanonicalName(rr.Header().Name), rr.Header().Rrtype
			if !dns.IsSubDomain(origin, owner) {
				v.errorf(rp, "%s is outside zone %s", rr.Header().Name, origin)
				continue
			}
			// What the resolver refuses to build, reported here with a line.
			if t == dns.TypeSOA && owner != origin {
				v.errorf(rp, "SOA at %s: it belongs at the zone apex %s", owner, origin)
				continue
			}
			if has, seen := cname[owner]; seen && has != (t == dns.TypeCNAME) {
				v.errorf(rp, "%s has a CNAME and other data (RFC 1034 §3.6.2)", owner)
				continue
			}
			cname[owner] = t == dns.TypeCNAME
			z.RRs = append(z.RRs, rr)
		}
	}
}

// parseRecord parses one record in presentation format relative to origin.
func parseRecord(text, origin string) (dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	zp.SetDefaultTTL(3600)
	rr, ok := zp.Next()
	if err := zp.Err(); err != nil {
		msg := err.Error()
		if pe, isPE := err.(*dns.ParseError); isPE {
			msg = strings.TrimPrefix(pe.Error(), "dns: ")
			msg, _, _ = strings.Cut(msg, ": at line:")
		}
		return nil, fmt.Errorf("record %q does not parse: %s", text, msg)
	}
	if !ok {
		return nil, fmt.Errorf("empty record")
	}
	if _, more := zp.Next(); more {
		return nil, fmt.Errorf("one record per entry, got more in %q", text)
	}
	if rr.Header().Class != dns.ClassINET {
		return nil, fmt.Errorf("record %q: only class IN is served", text)
	}
	return rr, nil
}

func (v *validator) acls() {
	names := map[string]bool{}
	for i, a := range v.c.ACLs {
		p := fmt.Sprintf("acls[%d]", i)
		switch {
		case a.Name == "":
			v.errorf(p+".name", "name is required")
		case names[a.Name]:
			v.errorf(p+".name", "duplicate acl %q", a.Name)
		}
		names[a.Name] = true
		if len(a.Allow) == 0 && len(a.Deny) == 0 {
			v.errorf(p, "an acl needs allow or deny entries")
		}
		v.prefixes(p+".allow", a.Allow)
		v.prefixes(p+".deny", a.Deny)
	}
}

func (v *validator) prefixes(path string, ps []netip.Prefix) {
	for i, p := range ps {
		if !p.IsValid() {
			v.errorf(fmt.Sprintf("%s[%d]", path, i), "empty CIDR")
		}
	}
}

// readable reports a problem when a configured file cannot be opened.
func (v *validator) readable(path, name string) {
	if name == "" {
		return
	}
	f, err := os.Open(v.c.Path(name))
	if err != nil {
		v.errorf(path, "cannot read %s: %s", name, readErr(err))
		return
	}
	f.Close()
}

// cmpOr is cmp.Or for the path of entries made by flags.
func cmpOr(origin, path string) string {
	if origin != "" {
		return origin
	}
	return path
}

// upstreamHost is the host of a valid upstream URL.
func upstreamHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
