package resolver

import "net/netip"

// ACLRule allows or denies the clients in Prefix.
type ACLRule struct {
	Prefix netip.Prefix
	Allow  bool
}

// ACL is an ordered access list: the first rule whose prefix contains the
// client decides; a client no rule matches is denied, and so is an empty ACL.
// IPv4-mapped IPv6 clients are matched as IPv4.
type ACL []ACLRule

// Allowed reports whether the ACL lets client in. It does not allocate.
func (a ACL) Allowed(client netip.Addr) bool {
	client = client.Unmap().WithZone("")
	for _, r := range a {
		if r.Prefix.Contains(client) {
			return r.Allow
		}
	}
	return false
}

// DefaultACL allows loopback, RFC 1918, shared address space (RFC 6598),
// RFC 4193 unique local and link-local clients and denies everything else.
// A fresh slice is returned on every call.
func DefaultACL() ACL {
	allow := []string{
		"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
		"100.64.0.0/10", "169.254.0.0/16",
		"::1/128", "fc00::/7", "fe80::/10",
	}
	acl := make(ACL, len(allow))
	for i, s := range allow {
		acl[i] = ACLRule{Prefix: netip.MustParsePrefix(s), Allow: true}
	}
	return acl
}

// aclFor returns the ACL that applies to listener.
func aclFor(acls map[string]ACL, def ACL, listener string) ACL {
	if a, ok := acls[listener]; ok {
		return a
	}
	if a, ok := acls["*"]; ok {
		return a
	}
	return def
}
