package testenv

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestNSD checks the helper against kdig: zones are served, and a stopped NSD
// starts again on the same address.
func TestNSD(t *testing.T) {
	kdig := Tool(t, "kdig")
	n := StartNSD(t, NSDConfig{Zones: map[string]string{
		"corp.example.": "app A 10.200.0.80\n",
		"other.test.":   "x TXT hi\n",
	}})
	ask := func(args ...string) string {
		args = append([]string{"@" + n.Addr.Addr().String(), "-p", strconv.Itoa(int(n.Addr.Port())), "+short", "+timeout=2"}, args...)
		out, err := exec.Command(kdig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kdig %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := ask("app.corp.example"); got != "10.200.0.80" {
		t.Fatalf("A: %q", got)
	}
	n.Stop()
	n.Stop()
	n.Start()
	if got := ask("x.other.test", "TXT"); got != `"hi"` {
		t.Fatalf("TXT after restart: %q", got)
	}
}
