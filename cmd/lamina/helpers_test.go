package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
)

// laminaBin is the binary built from the tree by TestMain.
var laminaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lamina-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	laminaBin = filepath.Join(dir, "lamina")
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	args := []string{"build", "-o", laminaBin}
	if os.Getenv("LAMINA_TEST_RACE") != "" {
		args = append(args, "-race") // the processes report data races on stderr
	}
	out, err := exec.Command(gobin, append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building lamina: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running lamina.
type proc struct {
	cmd   *exec.Cmd
	out   *syncBuffer
	admin string // ip:port
	dns   string // ip:port of its Do53 listeners
	done  chan struct{}
	err   error
}

// startLamina runs `lamina serve` with args plus -admin on a free port and
// waits until /readyz answers 200. The process is killed when the test ends.
func startLamina(t *testing.T, dnsAddr string, args ...string) *proc {
	t.Helper()
	return startLaminaEnv(t, nil, dnsAddr, args...)
}

// startLaminaEnv is startLamina with extra environment variables.
func startLaminaEnv(t *testing.T, env []string, dnsAddr string, args ...string) *proc {
	t.Helper()
	p := &proc{
		out:   &syncBuffer{},
		admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		dns:   dnsAddr,
		done:  make(chan struct{}),
	}
	p.cmd = exec.Command(laminaBin, append([]string{"serve", "-admin", p.admin}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Error("lamina reported a data race")
		}
		if t.Failed() {
			t.Logf("lamina output:\n%s", p.out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("lamina exited early: %v\n%s", p.err, p.out)
		default:
		}
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("lamina not ready after 10s:\n%s", p.out)
	return nil
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("lamina still running after %v", d)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitLog waits until the process's output contains s.
func (p *proc) waitLog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in lamina's output after %v:\n%s", s, d, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metrics returns the text of /metrics.
func (p *proc) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// freeAddr is 127.0.0.1 with a port free for UDP and TCP.
func freeAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
}

// nsd is a running NSD serving zones from text, stopped at cleanup.
type nsd struct {
	*testenv.NSD
	addr string
}

// startNSD runs NSD on a free loopback port with the given zones (origin →
// records) and waits until it answers.
func startNSD(t *testing.T, zones map[string]string) *nsd {
	t.Helper()
	n := testenv.StartNSD(t, testenv.NSDConfig{Zones: zones})
	return &nsd{NSD: n, addr: n.Addr.String()}
}

// exchange sends one query with EDNS (so that EDEs come back) and returns the
// answer.
func exchange(addr, network, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, addr)
	return r, err
}

// mustExchange is exchange that fails the test on a transport error.
func mustExchange(t *testing.T, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := exchange(addr, network, name, qtype)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// ede returns the first Extended DNS Error code of m, or -1.
func ede(m *dns.Msg) int {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return int(e.InfoCode)
			}
		}
	}
	return -1
}

// kdig runs kdig against addr and returns its output.
func kdig(t *testing.T, addr string, args ...string) string {
	t.Helper()
	bin := testenv.Tool(t, "kdig")
	host, port, _ := net.SplitHostPort(addr)
	all := append([]string{"@" + host, "-p", port, "+time=3", "+retry=0"}, args...)
	out, err := exec.Command(bin, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %v: %v\n%s", all, err, out)
	}
	return string(out)
}

// writeConfig writes a config file into a temp dir and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lamina.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// perfRun is a dnsperf run in the background against a Lamina listener.
type perfRun struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// startDnsperf runs dnsperf against addr with the query file and args (rate,
// length, …); wait collects its result.
func startDnsperf(t *testing.T, addr, qfile string, args ...string) *perfRun {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	r := &perfRun{out: &syncBuffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(testenv.Tool(t, "dnsperf"), append([]string{"-s", host, "-p", port, "-d", qfile}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	return r
}

// wait waits for dnsperf (at most limit) and checks that it sent at least
// minSent queries, lost none and got NOERROR for every one; what happened is
// described by during, for the messages.
func (r *perfRun) wait(t *testing.T, limit time.Duration, minSent int, during string) {
	t.Helper()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("dnsperf: %v\n%s", err, r.out)
		}
	case <-time.After(limit):
		r.cmd.Process.Kill()
		t.Fatalf("dnsperf did not finish:\n%s", r.out)
	}
	out := r.out.String()
	sent := regexp.MustCompile(`Queries sent:\s+(\d+)`).FindStringSubmatch(out)
	lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindStringSubmatch(out)
	if sent == nil || lost == nil {
		t.Fatalf("cannot parse dnsperf output:\n%s", out)
	}
	t.Logf("dnsperf: %s queries sent, %s lost %s", sent[1], lost[1], during)
	if lost[1] != "0" || atoi(sent[1]) < minSent {
		t.Errorf("dnsperf sent %s, lost %s %s; want ≥ %d sent, 0 lost:\n%s", sent[1], lost[1], during, minSent, out)
	}
	if !strings.Contains(out, "Response codes:       NOERROR "+sent[1]+" (100.00%)") {
		t.Errorf("answers other than NOERROR %s:\n%s", during, out)
	}
}
