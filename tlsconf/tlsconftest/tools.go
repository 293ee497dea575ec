package tlsconftest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
)

// Run runs a client program (skipped when missing, failed under CI=true)
// with a time bound and returns its combined output; a non-zero exit fails
// the test.
func Run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Tool(t, tool), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Perf is what a dnsperf run reports.
type Perf struct {
	Sent, Completed, Lost int
	QPS                   float64
	Output                string
}

var (
	perfSent      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	perfCompleted = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	perfLost      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	perfQPS       = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
)

// Dnsperf runs dnsperf against 127.0.0.1:port with the given mode and extra
// arguments, sending names (one "name type" line each) from a data file.
func Dnsperf(t testing.TB, mode string, port int, lines []string, args ...string) Perf {
	t.Helper()
	data := filepath.Join(t.TempDir(), "queries.txt")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"-m", mode, "-s", "127.0.0.1", "-p", strconv.Itoa(port), "-d", data}, args...)
	out := Run(t, "dnsperf", all...)
	num := func(re *regexp.Regexp) string {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dnsperf output lacks %s:\n%s", re, out)
		}
		return m[1]
	}
	p := Perf{Output: out}
	p.Sent, _ = strconv.Atoi(num(perfSent))
	p.Completed, _ = strconv.Atoi(num(perfCompleted))
	p.Lost, _ = strconv.Atoi(num(perfLost))
	p.QPS, _ = strconv.ParseFloat(num(perfQPS), 64)
	return p
}
