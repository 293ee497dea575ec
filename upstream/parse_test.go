package upstream

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string // want: String() of the upstream, or an error substring prefixed "!"
	}{
		{"udp://127.0.0.1", "udp://127.0.0.1:53"},
		{"udp://127.0.0.1:5300", "udp://127.0.0.1:5300"},
		{"tcp://[::1]:53", "tcp://[::1]:53"},
		{"tcp://[2001:DB8::1]", "tcp://[2001:db8::1]:53"},
		{"udp://[::ffff:192.0.2.1]:53", "udp://192.0.2.1:53"},
		{"udp://127.0.0.1/", "udp://127.0.0.1:53"},
		{"127.0.0.1:53", "!"},
		{"udp://dns.example:53", "!not an IP address"},
		{"udp://127.0.0.1:0", "!bad port"},
		{"udp://127.0.0.1:65536", "!bad port"},
		{"udp://127.0.0.1:", "!empty port"},
		{"udp://", "!missing host"},
		{"udp://127.0.0.1/dns-query", "!only udp://host[:port]"},
		{"tcp://user@127.0.0.1", "!only tcp://host[:port]"},
		{"udp://127.0.0.1?x=1", "!only udp://host[:port]"},
		{"udp://[fe80::1%25eth0]:53", "!zoned"},
		{"sctp://127.0.0.1", "!unsupported"},
		{"", "!missing scheme"},
	}
	for _, tt := range tests {
		u, err := Parse(tt.in, Options{})
		if strings.HasPrefix(tt.want, "!") {
			if err == nil {
				u.Close()
				t.Errorf("Parse(%q) = %s, want an error", tt.in, u)
			} else if !strings.Contains(err.Error(), tt.want[1:]) {
				t.Errorf("Parse(%q) error %q, want it to mention %q", tt.in, err, tt.want[1:])
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if u.String() != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, u, tt.want)
		}
		u.Close()
	}
	if _, err := Parse("sctp://127.0.0.1", Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown scheme: %v, want ErrUnsupported", err)
	}
}

func TestParseStrategy(t *testing.T) {
	for _, s := range []Strategy{Failover, RoundRobin, Race, Fastest} {
		got, err := ParseStrategy(s.String())
		if err != nil || got != s {
			t.Errorf("ParseStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if got, err := ParseStrategy(""); err != nil || got != Failover {
		t.Errorf(`ParseStrategy("") = %v, %v; want failover`, got, err)
	}
	if _, err := ParseStrategy("random"); err == nil {
		t.Error("ParseStrategy(random) accepted")
	}
}

func TestNewGroupValidates(t *testing.T) {
	a := &fake{name: "a", fn: failing}
	for _, cfg := range []GroupConfig{
		{},
		{Upstreams: []Upstream{a}, Strategy: Strategy(9)},
		{Upstreams: []Upstream{a}, Explore: 1},
	} {
		if g, err := NewGroup(cfg); err == nil {
			g.Close()
			t.Errorf("NewGroup(%+v) accepted", cfg)
		}
	}
}

// TestParseHostname: plain DNS by hostname through a bootstrap.
func TestParseHostname(t *testing.T) {
	srv := startServer(t)
	boot := NewUDP(srv.addr, Options{})
	defer boot.Close()
	for _, scheme := range []string{"udp", "tcp"} {
		u, err := Parse(scheme+"://dns.test:"+strings.Split(srv.addr.String(), ":")[1], Options{Bootstrap: boot})
		if err != nil {
			t.Fatal(err)
		}
		testRoundTrip(t, u, "www.example.", "192.0.2.1")
		u.Close()
	}
}
