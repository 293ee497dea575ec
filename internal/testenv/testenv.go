package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run in CI, where every tool must be present.
func CI() bool { return os.Getenv("CI") == "true" }

// Tool returns the path of the named program. When it is missing the test is
// skipped, or failed under CI=true.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/ipsec"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	Missing(t, name+" not installed (run `make deps`)")
	return ""
}

// Missing skips the test, or fails it under CI=true, for a missing prerequisite.
func Missing(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

// Root requires root (for network namespaces); see Missing.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "test needs root for network namespaces")
	}
}

// FreePort returns a port on 127.0.0.1 that is free for both UDP and TCP at the
// time of the call, for external servers that must be told a port up front.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port found")
	return 0
}
