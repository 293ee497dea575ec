package cache

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the brief's layering for the package itself (not its
// tests): miekg/dns, golang-lru, go-redis, the standard library, and package
// resolver for its Freshness type alone (see doc.go). No Prometheus, and no
// other Lamina package.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-f", `{{join .Imports " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, imp := range strings.Fields(string(out)) {
		switch {
		case !strings.Contains(strings.SplitN(imp, "/", 2)[0], "."): // standard library
		case imp == "github.com/laminadns/lamina/resolver",
			strings.HasPrefix(imp, "github.com/miekg/dns"),
			strings.HasPrefix(imp, "github.com/hashicorp/golang-lru/v2"),
			strings.HasPrefix(imp, "github.com/redis/go-redis/v9"):
		default:
			t.Errorf("cache imports %s", imp)
		}
	}
}
