package ipsec

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the layering in style.md §4.4: nothing under
// ipsec/ knows DNS or any Lamina package outside ipsec/, and gVisor is
// imported only by ipsec/netstack.
func TestDependencies(t *testing.T) {
	const mod = "github.com/laminadns/lamina/"
	out, err := exec.Command("go", "list", "-e", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(p, "github.com/miekg/dns"), strings.HasPrefix(p, "golang.org/x/net/dns"),
			strings.HasPrefix(p, "codeberg.org/miekg/dns"):
			t.Errorf("ipsec depends on DNS package %s", p)
		case p == mod+"internal/testenv": // test helpers (ipsec/ike/iketest) may find tools
		case strings.HasPrefix(p, mod) && !strings.HasPrefix(p, mod+"ipsec"):
			t.Errorf("ipsec depends on %s, outside ipsec/", p)
		}
	}
	out, err = exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, "gvisor.dev/") && f[0] != mod+"ipsec/netstack" {
				t.Errorf("%s imports %s; gVisor belongs in ipsec/netstack", f[0], imp)
			}
		}
	}
}
