package testenv

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NSDConfig describes an NSD authoritative server for a test.
type NSDConfig struct {
	// Zones maps an origin ("corp.example.") to its records in zone-file
	// syntax, relative to the origin. The SOA (negative TTL 60) and an NS
	// record are added.
	Zones map[string]string

	// Addr is where NSD listens (UDP and TCP). The zero value means 127.0.0.1
	// on a free port.
	Addr netip.AddrPort

	// Prefix runs NSD under another command, e.g. {"ip", "netns", "exec", "gw"}.
	// The readiness probe is skipped then, since the test's own namespace may
	// not reach NSD; NSD's log line is awaited instead.
	Prefix []string
}

// NSD is a running NSD, stopped at test cleanup.
type NSD struct {
	Addr netip.AddrPort
	t    testing.TB
	cfg  NSDConfig
	dir  string
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNSD writes a configuration and zones to a temporary directory and runs
// NSD in the foreground until the test ends. It skips (or fails under CI=true)
// when NSD is missing.
func StartNSD(t testing.TB, cfg NSDConfig) *NSD {
	t.Helper()
	n := &NSD{t: t, cfg: cfg, dir: t.TempDir(), bin: Tool(t, "nsd")}
	n.Addr = cfg.Addr
	if !n.Addr.IsValid() {
		n.Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(FreePort(t)))
	}
	path := func(name string) string { return filepath.Join(n.dir, name) }
	conf := fmt.Sprintf(`server:
  ip-address: %s
  port: %d
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  zonelistfile: %q
  xfrdfile: %q
  xfrdir: %q
  pidfile: %q
  logfile: %q
  verbosity: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
`, n.Addr.Addr(), n.Addr.Port(), n.dir, path("zone.list"), path("xfrd.state"), n.dir, path("nsd.pid"), path("nsd.log"))
	for _, origin := range slices.Sorted(maps.Keys(cfg.Zones)) {
		body := fmt.Sprintf("$ORIGIN %s\n$TTL 300\n@ SOA ns admin 1 3600 600 86400 60\n@ NS ns\nns A 127.0.0.1\n%s\n", origin, cfg.Zones[origin])
		file := strings.TrimSuffix(origin, ".") + ".zone"
		if err := os.WriteFile(path(file), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		conf += fmt.Sprintf("zone:\n  name: %q\n  zonefile: %q\n", origin, file)
	}
	if err := os.WriteFile(path("nsd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Dir is NSD's working directory (configuration, zones, nsd.log).
func (n *NSD) Dir() string { return n.dir }

// Start (re)starts a stopped NSD on the same address.
func (n *NSD) Start() {
	n.t.Helper()
	args := append(slices.Clone(n.cfg.Prefix), n.bin, "-d", "-c", filepath.Join(n.dir, "nsd.conf"))
	n.cmd = exec.Command(args[0], args[1:]...)
	// NSD forks server and xfrd processes: a process group stops them all.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := make(chan struct{})
	n.done = done
	go func() { n.cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if n.ready() {
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(n.dir, "nsd.log"))
			n.t.Fatalf("nsd exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.Stop()
	n.t.Fatalf("nsd not ready within 15 s")
}

func (n *NSD) ready() bool {
	if len(n.cfg.Prefix) > 0 {
		log, _ := os.ReadFile(filepath.Join(n.dir, "nsd.log"))
		return strings.Contains(string(log), "nsd started")
	}
	c, err := net.DialTimeout("udp", n.Addr.String(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	// A query for the root SOA: any reply at all shows NSD is serving.
	q := binary.BigEndian.AppendUint16(nil, 0x4e53)
	q = append(q, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1)
	if _, err := c.Write(q); err != nil {
		return false
	}
	buf := make([]byte, 512)
	m, err := c.Read(buf)
	return err == nil && m >= 12 && buf[0] == 0x4e && buf[1] == 0x53
}

// Stop kills NSD and its children and waits for them. It is idempotent.
func (n *NSD) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}
