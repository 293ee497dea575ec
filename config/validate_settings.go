package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

func (v *validator) rateLimit() {
	r := v.c.RateLimit
	if r.QPS < 0 {
		v.errorf("rate_limit.qps", "must not be negative")
	}
	if r.Burst < 0 {
		v.errorf("rate_limit.burst", "must not be negative")
	}
	switch r.Action {
	case "", "refuse", "drop":
	default:
		v.errorf("rate_limit.action", "unknown action %q (want refuse or drop)", r.Action)
	}
	v.prefixes("rate_limit.exempt", r.Exempt)
}

func (v *validator) cache() {
	c := v.c.Cache
	if c.Size < 0 {
		v.errorf("cache.size", "must not be negative")
	}
	if c.Bytes < 0 {
		v.errorf("cache.bytes", "must not be negative")
	}
	if c.ServFailTTL > 0 && (c.ServFailTTL.D() < time.Second || c.ServFailTTL.D() > 5*time.Minute) {
		v.errorf("cache.servfail_ttl", "%s outside RFC 9520's 1s to 5m", c.ServFailTTL.D())
	}
	if c.MaxTTL > 0 && c.MinTTL > c.MaxTTL {
		v.errorf("cache.min_ttl", "%s is above max_ttl %s", c.MinTTL.D(), c.MaxTTL.D())
	}
	if r := c.Redis.URL; r != "" {
		u, err := url.Parse(r)
		switch {
		case err != nil:
			v.errorf("cache.redis.url", "invalid URL %q", r)
		case u.Scheme != "redis" && u.Scheme != "rediss":
			v.errorf("cache.redis.url", "unknown scheme %q (want redis or rediss)", u.Scheme)
		case checkHostPort(u.Host, true) != nil:
			v.errorf("cache.redis.url", "%q needs host:port", r)
		}
	}
	v.envName("cache.redis.password_env", c.Redis.PasswordEnv)
}

func (v *validator) resolver() {
	if v.c.Resolver.MaxBackground < 0 {
		v.errorf("resolver.max_background", "must not be negative")
	}
	if s := v.c.Resolver.ServiceName; s != "" {
		v.domain("resolver.service_name", s)
	}
}

func (v *validator) tls() {
	t := v.c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.errorf("tls", "cert_file and key_file go together")
	}
	v.readable("tls.cert_file", t.CertFile)
	v.readable("tls.key_file", t.KeyFile)
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		v.errorf("tls.min_version", "unknown TLS version %q (want 1.2 or 1.3)", t.MinVersion)
	}
	if t.ECH.PublicName != "" {
		v.domain("tls.ech.public_name", t.ECH.PublicName)
	}
	if (t.ECH.CertFile == "") != (t.ECH.KeyFile == "") {
		v.errorf("tls.ech", "cert_file and key_file go together")
	}
	v.readable("tls.ech.cert_file", t.ECH.CertFile)
	v.readable("tls.ech.key_file", t.ECH.KeyFile)
	if t.ECH.PublicName != "" && !t.ECH.Disable && t.MinVersion == "1.2" {
		v.errorf("tls.min_version", "ECH is TLS 1.3 only: drop min_version 1.2 or disable ECH")
	}
}

func (v *validator) logging() {
	l := v.c.Logging
	switch strings.ToLower(l.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		v.errorf("logging.level", "unknown level %q (want debug, info, warn or error)", l.Level)
	}
	switch l.Format {
	case "", "text", "json":
	default:
		v.errorf("logging.format", "unknown format %q (want text or json)", l.Format)
	}
}

func (v *validator) admin() {
	a := v.c.Admin
	if a.Address != "" {
		if err := checkHostPort(a.Address, false); err != nil {
			v.errorf(v.c.adminPath(), "%v", err)
		}
	}
	if a.TokenFile != "" && a.TokenEnv != "" {
		v.errorf("admin", "give at most one of token_file and token_env")
	}
	v.readable("admin.token_file", a.TokenFile)
	v.envName("admin.token_env", a.TokenEnv)
}

func (c *Config) adminPath() string {
	if c.adminFlag {
		return "-admin"
	}
	return "admin.address"
}

var (
	// proposalToken is what Lamina's IKEv2 implements, in strongSwan's names.
	proposalToken = regexp.MustCompile(`^(aes(128|256)(gcm(16)?)?|chacha20poly1305|sha(256|384|512)|prfsha(256|384|512)|x25519|curve25519|ecp(256|384)|modp2048|noesn)$`)
	envNameRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (v *validator) envName(path, s string) {
	if s != "" && !envNameRe.MatchString(s) {
		v.errorf(path, "%q is not an environment variable name", s)
	}
}

func (v *validator) tunnels() {
	names := map[string]bool{}
	for i, t := range v.c.Tunnels {
		p := fmt.Sprintf("tunnels[%d]", i)
		switch {
		case t.Name == "":
			v.errorf(p+".name", "name is required")
		case names[t.Name]:
			v.errorf(p+".name", "duplicate tunnel %q", t.Name)
		}
		names[t.Name] = true
		gw := t.Gateway
		if gw != "" && !strings.Contains(strings.TrimPrefix(gw, "["), "]:") && strings.Count(gw, ":") != 1 {
			gw += ":4500" // a bare name or IP literal
			if strings.Count(t.Gateway, ":") > 1 {
				gw = "[" + t.Gateway + "]:4500"
			}
		}
		if t.Gateway == "" {
			v.errorf(p+".gateway", "gateway is required")
		} else if err := checkHostPort(gw, true); err != nil {
			v.errorf(p+".gateway", "%v", err)
		}
		if t.LocalID == "" {
			v.errorf(p+".local_id", "local_id is required")
		}
		auth := 0
		for _, set := range []bool{t.PSKFile != "", t.PSKEnv != "", t.CertFile != "" || t.KeyFile != ""} {
			if set {
				auth++
			}
		}
		if auth != 1 {
			v.errorf(p, "give exactly one of psk_file, psk_env, or cert_file with key_file")
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.errorf(p, "cert_file and key_file go together")
		}
		v.readable(p+".psk_file", t.PSKFile)
		v.readable(p+".cert_file", t.CertFile)
		v.readable(p+".key_file", t.KeyFile)
		v.readable(p+".ca_file", t.CAFile)
		v.envName(p+".psk_env", t.PSKEnv)
		v.proposals(p+".ike_proposals", t.IKEProposals)
		v.proposals(p+".esp_proposals", t.ESPProposals)
		if len(t.RemoteSubnets) == 0 {
			v.errorf(p+".remote_subnets", "at least one remote subnet is required")
		}
		v.prefixes(p+".remote_subnets", t.RemoteSubnets)
		if t.MTU != 0 && (t.MTU < 576 || t.MTU > 9000) {
			v.errorf(p+".mtu", "%d out of range 576-9000", t.MTU)
		}
		if t.MTU != 0 && t.MTU < 1280 && t.InnerAddress.Is6() {
			v.errorf(p+".mtu", "IPv6 needs an MTU of at least 1280")
		}
		if d := t.RetransmitTimeout.D(); d < 0 || d > time.Minute || d > 0 && d < 100*time.Millisecond {
			v.errorf(p+".retransmit_timeout", "%v out of range 100ms-1m", d)
		}
		if t.RetransmitTries < 0 || t.RetransmitTries > 20 {
			v.errorf(p+".retransmit_tries", "%d out of range 1-20", t.RetransmitTries)
		}
	}
}

func (v *validator) proposals(path string, ps []string) {
	for i, prop := range ps {
		for tok := range strings.SplitSeq(strings.ToLower(prop), "-") {
			if !proposalToken.MatchString(tok) {
				v.errorf(fmt.Sprintf("%s[%d]", path, i), "unknown algorithm %q in proposal %q", tok, prop)
				break
			}
		}
	}
}

func (v *validator) proxies() {
	names := map[string]bool{}
	for i, px := range v.c.Proxies {
		p := fmt.Sprintf("proxies[%d]", i)
		switch {
		case px.Name == "":
			v.errorf(p+".name", "name is required")
		case names[px.Name]:
			v.errorf(p+".name", "duplicate proxy %q", px.Name)
		}
		names[px.Name] = true
		if px.Address == "" {
			v.errorf(p+".address", "address is required")
		} else if err := checkHostPort(px.Address, false); err != nil {
			v.errorf(p+".address", "%v", err)
		}
		if px.Tunnel != "" && !slices.ContainsFunc(v.c.Tunnels, func(t Tunnel) bool { return t.Name == px.Tunnel }) {
			v.errorf(p+".tunnel", "unknown tunnel %q", px.Tunnel)
		}
		if px.ACL != "" && !slices.ContainsFunc(v.c.ACLs, func(a ACL) bool { return a.Name == px.ACL }) {
			v.errorf(p+".acl", "unknown acl %q", px.ACL)
		}
		for k, port := range px.Ports {
			if port < 1 || port > 65535 {
				v.errorf(fmt.Sprintf("%s.ports[%d]", p, k), "port %d out of range 1-65535", port)
			}
		}
		if px.MaxConns < 0 {
			v.errorf(p+".max_conns", "must not be negative")
		}
	}
}
