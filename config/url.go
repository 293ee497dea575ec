package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// defaultPorts are the IANA ports of each scheme (RFC 1035, 7858, 8484, 9250).
var defaultPorts = map[string]uint16{
	"udp": 53, "tcp": 53, "tls": 853, "quic": 853, "https": 443, "h3": 443,
}

const schemes = "udp, tcp, tls, https, h3, quic"

// DefaultDoHPath is the DoH path used when an https:// or h3:// URL has none.
const DefaultDoHPath = "/dns-query"

// ParseListenURL parses a listener URL such as udp://127.0.0.1:8053 or
// https://[::1]:8443/dns-query. The host must be an IP literal.
func ParseListenURL(s string) (ListenURL, error) {
	scheme, host, port, path, err := splitURL(s)
	if err != nil {
		return ListenURL{}, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ListenURL{}, fmt.Errorf("listen host %q must be an IP address", host)
	}
	return ListenURL{Scheme: scheme, Addr: netip.AddrPortFrom(ip.Unmap(), port), Path: path}, nil
}

// ValidateUpstreamURL checks an upstream URL: a known scheme, a port in range,
// a path only for https and h3, and an IP literal for plain udp and tcp (which
// have no bootstrap).
func ValidateUpstreamURL(s string) error {
	scheme, host, _, _, err := splitURL(s)
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(host); err != nil && (scheme == "udp" || scheme == "tcp") {
		return fmt.Errorf("%s:// upstream host %q must be an IP address", scheme, host)
	}
	return nil
}

// splitURL checks what listener and upstream URLs have in common.
func splitURL(s string) (scheme, host string, port uint16, path string, err error) {
	if s == "" {
		return "", "", 0, "", fmt.Errorf("URL is required")
	}
	if !strings.Contains(s, "://") {
		return "", "", 0, "", fmt.Errorf("%q has no scheme (want one of %s, e.g. udp://127.0.0.1:53)", s, schemes)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", 0, "", fmt.Errorf("invalid URL %q", s)
	}
	scheme = strings.ToLower(u.Scheme)
	def, ok := defaultPorts[scheme]
	if !ok {
		return "", "", 0, "", fmt.Errorf("unknown scheme %q (want one of %s)", u.Scheme, schemes)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", 0, "", fmt.Errorf("%q: user info, query and fragment are not allowed", s)
	}
	host = u.Hostname()
	if host == "" {
		return "", "", 0, "", fmt.Errorf("%q has no host", s)
	}
	port = def
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", "", 0, "", fmt.Errorf("port %q out of range 1-65535", p)
		}
		port = uint16(n)
	} else if strings.HasSuffix(u.Host, ":") {
		return "", "", 0, "", fmt.Errorf("%q has an empty port", s)
	}
	path = u.Path
	switch scheme {
	case "https", "h3":
		if path == "" {
			path = DefaultDoHPath
		}
	default:
		if path != "" && path != "/" {
			return "", "", 0, "", fmt.Errorf("%s:// URLs take no path (got %q)", scheme, path)
		}
		path = ""
	}
	return scheme, host, port, path, nil
}

// checkHostPort validates "ip:port", or "host:port" with allowName (Redis,
// IPsec gateways: dialled, so a name resolves; listeners bind an address).
func checkHostPort(s string, allowName bool) error {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return fmt.Errorf("port %q out of range 0-65535", p)
	}
	if _, err := netip.ParseAddr(host); err != nil && !(allowName && host != "") {
		return fmt.Errorf("host %q must be an IP address", host)
	}
	return nil
}
