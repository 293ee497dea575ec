package main

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/laminadns/lamina/config"
)

func TestACLConversion(t *testing.T) {
	c, err := config.Parse("t.yaml", []byte(`
listeners:
  - {name: a, url: "udp://127.0.0.1:1", acl: lan}
  - {name: b, url: "udp://127.0.0.1:2"}
acls:
  - {name: lan, allow: [10.0.0.0/8, 10.1.2.0/24], deny: [10.1.0.0/16, "10.1.2.3/32"]}
  - {name: "*", allow: ["::/0"]}
`))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	got := acls(c)
	if len(got) != 2 || got["*"] == nil || got["b"] != nil {
		t.Fatalf("acls = %v", got)
	}
	lan := got["a"]
	for addr, want := range map[string]bool{
		"10.9.9.9":    true,  // allow /8
		"10.1.9.9":    false, // deny /16 is longer
		"10.1.2.9":    true,  // allow /24 is longer still
		"10.1.2.3":    false, // deny /32
		"192.168.0.1": false, // in neither list
	} {
		if lan.Allowed(netip.MustParseAddr(addr)) != want {
			t.Errorf("%s allowed = %v, want %v", addr, !want, want)
		}
	}
}

func TestCacheConfig(t *testing.T) {
	cc, _ := cacheConfig(config.Cache{Size: 10, MaxTTL: config.Duration(time.Hour)}, slog.Default())
	if cc.MaxEntries != 10 || cc.MaxTTL != time.Hour || cc.MaxStale >= 0 || cc.PrefetchHits != 0 {
		t.Errorf("defaults: %+v", cc)
	}
	cc, _ = cacheConfig(config.Cache{ServeStale: true, DisablePrefetch: true}, slog.Default())
	if cc.MaxStale != 0 || cc.PrefetchHits >= 0 || cc.Redis != nil {
		t.Errorf("serve_stale, no prefetch: %+v", cc)
	}
	t.Setenv("TEST_REDIS_PW", "s3cret/x")
	cc, err := cacheConfig(config.Cache{Redis: config.Redis{URL: "redis://127.0.0.1:6379/2", PasswordEnv: "TEST_REDIS_PW"}}, slog.Default())
	if err != nil || cc.Redis == nil || cc.Redis.URL != "redis://:s3cret%2Fx@127.0.0.1:6379/2" {
		t.Errorf("redis: %+v %v", cc.Redis, err)
	}
	if _, err := cacheConfig(config.Cache{Redis: config.Redis{URL: "redis://127.0.0.1:6379", PasswordEnv: "TEST_UNSET_PW"}}, slog.Default()); err == nil {
		t.Error("unset password_env accepted")
	}
}
