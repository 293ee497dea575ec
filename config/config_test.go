package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const minimal = `listeners:
  - url: udp://127.0.0.1:8053
`

func TestValid(t *testing.T) {
	src := minimal + `upstream_groups:
  - name: pub
    strategy: race
    stagger: 150ms
    ips: [192.0.2.9]
    upstreams: [udp://192.0.2.1, "tcp://[2001:db8::1]:5353", tls://dns.example, https://dns.example/q]
routes:
  - {zone: ., group: pub}
  - {zone: Corp.Example, group: pub}
local_zones:
  - name: home.arpa
    records: ["router IN A 192.168.1.1", "_ipp._tcp 60 IN SRV 0 0 631 router", "nas IN HTTPS 1 . alpn=h2"]
acls:
  - {name: lan, allow: [127.0.0.0/8], deny: [127.0.0.2/32]}
rate_limit: {qps: 2.5, burst: 5, action: drop, exempt: ["::1/128"]}
cache: {size: 1000, min_ttl: 1s, max_ttl: 1h}
`
	c, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners[0]; got.Name != "udp://127.0.0.1:8053" || got.Parsed.Addr.Port() != 8053 || got.Parsed.Scheme != "udp" {
		t.Errorf("listener = %+v", got)
	}
	if g := c.UpstreamGroups[0]; g.Stagger.D() != 150*time.Millisecond || len(g.Upstreams) != 4 {
		t.Errorf("group = %+v", g)
	}
	rrs := c.LocalZones[0].RRs
	if len(rrs) != 3 || rrs[1].Header().Name != "_ipp._tcp.home.arpa." || rrs[1].Header().Ttl != 60 || rrs[0].Header().Ttl != 3600 {
		t.Errorf("records = %v", rrs)
	}
	if srv := rrs[1].(*dns.SRV); srv.Target != "router.home.arpa." {
		t.Errorf("SRV target %q", srv.Target)
	}
	if c.RateLimit.QPS != 2.5 || c.RateLimit.Action != "drop" || c.ACLs[0].Deny[0].Bits() != 32 {
		t.Errorf("policy = %+v %+v", c.RateLimit, c.ACLs)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", minimal + "cache:\n  sise: 10\n", "t.yaml:4: cache.sise: unknown key (did you mean \"size\"?)"},
		{"unknown top key", "listener: []\n", "t.yaml:1: listener: unknown key (did you mean \"listeners\"?)"},
		{"wrong type int", minimal + "cache:\n  size: lots\n", "t.yaml:4: cache.size: want an integer, got \"lots\""},
		{"wrong type list", "listeners: udp://127.0.0.1:53\n", "t.yaml:1: listeners: want a list, got \"udp://127.0.0.1:53\""},
		{"wrong type bool", minimal + "cache:\n  serve_stale: yes please\n", "t.yaml:4: cache.serve_stale: want true or false"},
		{"wrong type map", minimal + "logging: [a]\n", "t.yaml:3: logging: want a mapping"},
		{"duplicate key", minimal + "cache:\n  size: 1\n  size: 2\n", "t.yaml:5: cache.size: key given twice"},
		{"syntax", "listeners:\n  - url: [\n", "t.yaml:2: did not find expected node content"},
		{"bad scheme", "listeners:\n  - url: udpp://127.0.0.1:53\n", "t.yaml:2: listeners[0].url: unknown scheme \"udpp\""},
		{"no scheme", "listeners:\n  - url: 127.0.0.1:53\n", "listeners[0].url: \"127.0.0.1:53\" has no scheme"},
		{"port range", "listeners:\n  - url: udp://127.0.0.1:70000\n", "t.yaml:2: listeners[0].url: port \"70000\" out of range 1-65535"},
		{"listen host name", "listeners:\n  - url: udp://localhost:53\n", "must be an IP address"},
		{"no listeners", "logging: {level: info}\n", "listeners: at least one listener is required"},
		{"dup listener name", "listeners:\n  - {name: a, url: udp://127.0.0.1:1}\n  - {name: a, url: tcp://127.0.0.1:1}\n", "t.yaml:3: listeners[1].name: duplicate listener name \"a\""},
		{"dup socket", "listeners:\n  - {url: udp://127.0.0.1:1}\n  - {url: quic://127.0.0.1:1}\n", "t.yaml:3: listeners[1].url: udp 127.0.0.1:1 is already used by listeners[0]"},
		{"unknown acl", "listeners:\n  - {url: udp://127.0.0.1:1, acl: nope}\n", "t.yaml:2: listeners[0].acl: unknown acl \"nope\""},
		{"bad cidr", minimal + "acls:\n  - name: x\n    allow: [10.0.0/8]\n", "t.yaml:5: acls[0].allow[0]: invalid CIDR \"10.0.0/8\""},
		{"unknown strategy", minimal + "upstream_groups:\n  - name: g\n    strategy: random\n    upstreams: [udp://192.0.2.1]\n", "t.yaml:5: upstream_groups[0].strategy: unknown strategy \"random\""},
		{"negative duration", minimal + "upstream_groups:\n  - name: g\n    timeout: -1s\n    upstreams: [udp://192.0.2.1]\n", "t.yaml:5: upstream_groups[0].timeout: negative duration \"-1s\""},
		{"bad duration", minimal + "resolver:\n  timeout: 5\n", "t.yaml:4: resolver.timeout: invalid duration \"5\""},
		{"upstream udp name", minimal + "upstream_groups:\n  - name: g\n    upstreams: [udp://dns.example]\n", "t.yaml:5: upstream_groups[0].upstreams[0]: udp:// upstream host \"dns.example\" must be an IP address"},
		{"route unknown group", minimal + "routes:\n  - zone: corp.example\n    group: corp\n", "t.yaml:5: routes[0].group: unknown upstream group \"corp\""},
		{"route bad zone", minimal + "upstream_groups: [{name: g, upstreams: [udp://192.0.2.1]}]\nroutes:\n  - {zone: \"a..b\", group: g}\n", "t.yaml:5: routes[0].zone: \"a..b\" is not a domain name"},
		{"record parse", minimal + "local_zones:\n  - name: home.arpa\n    records:\n      - \"x IN A 300.1.1.1\"\n", "t.yaml:6: local_zones[0].records[0]: record \"x IN A 300.1.1.1\" does not parse"},
		{"record outside", minimal + "local_zones:\n  - name: home.arpa\n    records:\n      - \"x.example. IN A 192.0.2.1\"\n", "t.yaml:6: local_zones[0].records[0]: x.example. is outside zone home.arpa."},
		{"cname and other data", minimal + "local_zones:\n  - name: home.arpa\n    records:\n      - \"www A 192.0.2.1\"\n      - \"WWW CNAME nas\"\n", "t.yaml:7: local_zones[0].records[1]: www.home.arpa. has a CNAME and other data"},
		{"soa below apex", minimal + "local_zones:\n  - name: home.arpa\n    records:\n      - \"sub SOA ns hostmaster 1 2 3 4 5\"\n", "t.yaml:6: local_zones[0].records[0]: SOA at sub.home.arpa.: it belongs at the zone apex home.arpa."},
		{"resolver.arpa zone", minimal + "local_zones:\n  - name: _dns.Resolver.Arpa\n", "t.yaml:4: local_zones[0].name: _dns.resolver.arpa. is reserved for Lamina's DDR records"},
		{"rate action", minimal + "rate_limit:\n  action: block\n", "t.yaml:4: rate_limit.action: unknown action \"block\""},
		{"log format", minimal + "logging:\n  format: xml\n", "t.yaml:4: logging.format: unknown format \"xml\""},
		{"admin address", minimal + "admin:\n  address: nowhere\n", "t.yaml:4: admin.address: \"nowhere\" is not host:port"},
		{"udp max_conns", "listeners:\n  - {url: \"udp://127.0.0.1:5300\", max_conns: 5}\n", "max_conns: not for udp listeners"},
		{"idle range", "listeners:\n  - {url: \"tcp://127.0.0.1:5300\", idle_timeout: 10ms}\n", "idle_timeout: 10ms out of range 1s-24h"},
		{"admin token twice", minimal + "admin:\n  token_file: /etc/hostname\n  token_env: T\n", "t.yaml:3: admin: give at most one of token_file and token_env"},
		{"admin token env", minimal + "admin:\n  token_env: 1T\n", "t.yaml:4: admin.token_env: \"1T\" is not an environment variable name"},
		{"missing cert", minimal + "tls:\n  cert_file: /nonexistent/c.pem\n  key_file: /nonexistent/k.pem\n", "t.yaml:4: tls.cert_file: cannot read /nonexistent/c.pem: no such file or directory"},
		{"tunnel auth", minimal + "tunnels:\n  - name: t\n    gateway: 192.0.2.1\n    local_id: me\n    remote_subnets: [10.0.0.0/8]\n", "t.yaml:4: tunnels[0]: give exactly one of psk_file, psk_env"},
		{"tunnel proposal", minimal + "tunnels:\n  - {name: t, gateway: 192.0.2.1, local_id: me, psk_env: K, remote_subnets: [10.0.0.0/8], esp_proposals: [aes256gcm16-md5]}\n", "unknown algorithm \"md5\""},
		{"tunnel retransmit", minimal + "tunnels:\n  - {name: t, gateway: 192.0.2.1, local_id: me, psk_env: K, remote_subnets: [10.0.0.0/8], retransmit_timeout: 10ms, retransmit_tries: 50}\n", "retransmit_timeout: 10ms out of range 100ms-1m"},
		{"tunnel retransmit tries", minimal + "tunnels:\n  - {name: t, gateway: 192.0.2.1, local_id: me, psk_env: K, remote_subnets: [10.0.0.0/8], retransmit_tries: 50}\n", "retransmit_tries: 50 out of range 1-20"},
		{"group unknown tunnel", minimal + "upstream_groups:\n  - {name: g, tunnel: x, upstreams: [udp://10.0.0.1]}\n", "t.yaml:4: upstream_groups[0].tunnel: unknown tunnel \"x\""},
		{"bootstrap encrypted", minimal + "upstream_groups:\n  - {name: g, bootstrap: [\"tls://192.0.2.1\"], upstreams: [\"tls://dns.example\"]}\n", "t.yaml:4: upstream_groups[0].bootstrap[0]: bootstrap servers are plain udp:// or tcp://"},
		{"bad pin", minimal + "upstream_groups:\n  - {name: g, pin_sha256: [abc], upstreams: [\"tls://dns.example\"]}\n", "t.yaml:4: upstream_groups[0].pin_sha256[0]: want the base64 of a 32-byte SHA-256 digest"},
		{"ech policy", minimal + "upstream_groups:\n  - {name: g, ech: maybe, upstreams: [\"tls://dns.example\"]}\n", "t.yaml:4: upstream_groups[0].ech: unknown ECH policy \"maybe\""},
		{"redis url", minimal + "cache:\n  redis: {url: \"http://x:1\"}\n", "t.yaml:4: cache.redis.url: unknown scheme \"http\""},
		{"proxy", minimal + "proxies:\n  - {name: p, address: \"127.0.0.1:1080\", tunnel: nope, ports: [0]}\n", "t.yaml:4: proxies[0].ports[0]: port 0 out of range"},
		{"upstream name without bootstrap", minimal + "upstream_groups:\n  - {name: g, upstreams: [\"tls://dns.example\"]}\n", "t.yaml:4: upstream_groups[0].upstreams[0]: host \"dns.example\" is a name: give the group bootstrap servers or ips"},
		{"two documents", minimal + "---\nlisteners: []\n", "t.yaml:3: more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestAllErrorsSortedByLine(t *testing.T) {
	src := "listeners:\n  - url: bad://x\nlogging:\n  level: loud\nrate_limit:\n  qps: -1\n"
	c, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	got := strings.Split(err.Error(), "\n")
	if len(got) != 3 || !strings.HasPrefix(got[0], "t.yaml:2:") || !strings.HasPrefix(got[1], "t.yaml:4:") || !strings.HasPrefix(got[2], "t.yaml:6:") {
		t.Errorf("errors:\n%s", err)
	}
}

func TestOverrides(t *testing.T) {
	src := minimal + "upstream_groups:\n  - {name: corp, upstreams: [udp://10.0.0.1]}\n  - {name: pub, upstreams: [udp://192.0.2.1]}\n" +
		"routes:\n  - {zone: corp.example, group: corp}\n  - {zone: ., group: pub}\n"
	c, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(Overrides{
		Listen:   []string{"udp://127.0.0.1:5300", "tcp://127.0.0.1:5300"},
		Upstream: []string{"udp://127.0.0.1:5301"},
		Admin:    "127.0.0.1:9999",
	})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 2 || c.Listeners[1].Parsed.Scheme != "tcp" {
		t.Errorf("listeners = %+v", c.Listeners)
	}
	if len(c.Routes) != 2 || c.Routes[0].Group != "corp" || c.Routes[1].Group != FlagGroup {
		t.Errorf("routes = %+v", c.Routes)
	}
	if c.Admin.Address != "127.0.0.1:9999" {
		t.Errorf("admin = %+v", c.Admin)
	}

	c2, _ := Parse("", nil)
	c2.Apply(Overrides{Listen: []string{"udp://127.0.0.1:99999"}, Upstream: []string{"udp://nowhere"}, Admin: "x"})
	err = c2.Validate()
	for _, want := range []string{"-listen udp://127.0.0.1:99999: port", "-upstream: udp:// upstream host", "-admin: \"x\" is not host:port"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yaml")
	src := minimal + "tunnels:\n  - {name: t, gateway: \"[2001:db8::1]:4500\", local_id: me, psk_file: psk, remote_subnets: [10.0.0.0/8]}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Path(c.Tunnels[0].PSKFile); got != filepath.Join(dir, "psk") {
		t.Errorf("Path = %q", got)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("listeners: [{url: udp://127.0.0.1:1, acl: a}]\nacls: [{name: a, allow: [::/0]}]\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("local_zones: [{name: x, records: [\"@ IN TXT a\"]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil {
			_ = c.Validate()
		}
	})
}
