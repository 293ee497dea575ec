package resolver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/upstream"
)

// route is a validated Route.
type route struct {
	zone    string // lower-case FQDN
	up      upstream.Upstream
	queries prometheus.Counter // nil without metrics
}

// router finds the route with the longest zone suffix of a name.
type router struct {
	byZone map[string]*route
}

func newRouter(cfg []Route, m *metrics) (*router, error) {
	rt := &router{byZone: make(map[string]*route, len(cfg))}
	for i, r := range cfg {
		zone := r.Zone
		if zone == "" {
			zone = "."
		}
		zone = strings.ToLower(dns.Fqdn(zone))
		if _, ok := dns.IsDomainName(zone); !ok {
			return nil, fmt.Errorf("route %d: zone %q is not a domain name", i, r.Zone)
		}
		if r.Upstream == nil {
			return nil, fmt.Errorf("route %s: no upstream", zone)
		}
		if _, dup := rt.byZone[zone]; dup {
			return nil, fmt.Errorf("route %s: configured twice", zone)
		}
		rt.byZone[zone] = &route{zone: zone, up: r.Upstream, queries: m.routeCounter(zone)}
	}
	return rt, nil
}

// match returns the route for lname (a lower-case FQDN), or nil. Suffixes are
// tried at label boundaries only, longest first, so "xcorp.example." never
// matches "corp.example.".
func (rt *router) match(lname string) *route {
	for off, end := 0, false; !end; off, end = dns.NextLabel(lname, off) {
		if r, ok := rt.byZone[lname[off:]]; ok {
			return r
		}
	}
	return rt.byZone["."]
}

// routedUnder reports whether the route for lname is at or under z's apex: an
// operator who routes part of a locally served zone (say a corporate
// 10.in-addr.arpa) wants those names forwarded.
func (rt *router) routedUnder(z *zone, lname string) bool {
	r := rt.match(lname)
	return r != nil && r.zone != "." && dns.IsSubDomain(z.name, r.zone)
}

// errNoRoute answers names no route covers.
var errNoRoute = &Error{Rcode: dns.RcodeRefused, Code: dns.ExtendedErrorCodeNotAuthoritative, Text: "no route for this name"}

// upstreamError maps a failed exchange to the EDE the client sees: 22 No
// Reachable Authority when nothing answered in time or every upstream is
// down, 23 Network Error for other failures.
func upstreamError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if isTimeout(err) || errors.Is(err, upstream.ErrAllDown) {
		return &Error{Code: dns.ExtendedErrorCodeNoReachableAuthority, Text: "no upstream answered", Err: err}
	}
	return &Error{Code: dns.ExtendedErrorCodeNetworkError, Text: "upstream failed", Err: err}
}
