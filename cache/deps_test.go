package cache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the brief's layering for the package itself (not its
// tests): miekg/dns, golang-lru, go-redis and the standard library. No
// Prometheus, and no Lamina package: *Cache satisfies resolver.Cache
// structurally (cache_test.go checks it).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{join .Imports " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		switch {
		case !strings.Contains(strings.SplitN(imp, "/", 2)[0], "."): // standard library
		case strings.HasPrefix(imp, "github.com/miekg/dns"),
			strings.HasPrefix(imp, "github.com/hashicorp/golang-lru/v2"),
			strings.HasPrefix(imp, "github.com/redis/go-redis/v9"):
		default:
			t.Errorf("cache imports %s", imp)
		}
	}
}
