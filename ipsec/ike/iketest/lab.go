package iketest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/laminadns/lamina/internal/testenv"
)

// Addresses of the lab topology.
var (
	GatewayAddr = netip.MustParseAddr("192.0.2.2")
	ClientAddr  = netip.MustParseAddr("192.0.2.1")
	DNSAddr     = netip.MustParseAddr("10.200.0.53")
	Pool        = netip.MustParsePrefix("10.201.0.0/24")
	Internal    = netip.MustParsePrefix("10.200.0.0/24")
	// IPv6 inner side, with Gateway.IPv6.
	DNSAddr6  = netip.MustParseAddr("fd00:200::53")
	Pool6     = netip.MustParsePrefix("fd00:201::/120")
	Internal6 = netip.MustParsePrefix("fd00:200::/120")
)

// Zone is the zone NSD serves on DNSAddr: "lab.example." with an A record
// for www.lab.example. (192.0.2.80).
const Zone = "lab.example."

// Gateway configures the strongSwan side.
type Gateway struct {
	// Proposals and ESPProposals are strongSwan proposal strings, e.g.
	// "aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha256-ecp256".
	Proposals, ESPProposals string
	// PSK is the shared secret; LocalID and RemoteID the identities.
	PSK               string
	LocalID, RemoteID string
	// Pool hands out virtual IPs from 10.201.0.0/24 when set; otherwise
	// remote_ts is 10.201.0.0/24 and the client uses a configured address.
	Pool bool
	// IPv6 adds the inner IPv6 side: Internal6 behind the gateway with NSD
	// on DNSAddr6, and (with Pool) virtual IPs from Pool6.
	IPv6 bool
	// Extra lines for the connection and child sections (one key per line).
	ConnExtra, ChildExtra string
	// CharonExtra is added inside the charon { } section of strongswan.conf.
	CharonExtra string
	// LocalAuth and RemoteAuth are the gateway's and the client's
	// authentication: "psk" (empty) or "pubkey".
	LocalAuth, RemoteAuth string
	// SecondClient prepares the gateway for StrongSwanClient: a second
	// connection on 198.51.100.2 for the identity client2.example.
	SecondClient bool
	// CACert, Cert and Key are PEM: the trusted CA, the gateway's
	// certificate and its PKCS#8 private key, for "pubkey".
	CACert, Cert, Key []byte
}

// Lab is a running gateway with its namespaces.
type Lab struct {
	GW, CL     string // namespace names
	dir        string
	env        []string
	swanctl    string
	charonArgs []string
	stopCharon func(unix.Signal)
}

var seq atomic.Int32

// Start builds the topology, starts charon and NSD, and loads g.
func Start(t testing.TB, g Gateway) *Lab {
	t.Helper()
	testenv.Root(t)
	ip := testenv.Tool(t, "ip")
	charon := testenv.Tool(t, "charon")
	swanctl := testenv.Tool(t, "swanctl")
	nsd := testenv.Tool(t, "nsd")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Missing(t, "no /dev/net/tun for kernel-libipsec")
	}
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, seq.Add(1))
	l := &Lab{GW: "lam-gw-" + id, CL: "lam-cl-" + id, dir: t.TempDir(), swanctl: swanctl}
	vcl, vgw := "lc"+strings.ReplaceAll(id, "-", "x"), "lg"+strings.ReplaceAll(id, "-", "x")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.GW)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", l.GW).Run() })
	run("netns", "add", l.CL)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", l.CL).Run() })
	run("link", "add", vcl, "type", "veth", "peer", "name", vgw)
	run("link", "set", vcl, "netns", l.CL)
	run("link", "set", vgw, "netns", l.GW)
	run("-n", l.CL, "addr", "add", ClientAddr.String()+"/24", "dev", vcl)
	run("-n", l.GW, "addr", "add", GatewayAddr.String()+"/24", "dev", vgw)
	for _, n := range []string{l.CL, l.GW} {
		run("-n", n, "link", "set", "lo", "up")
	}
	run("-n", l.CL, "link", "set", vcl, "up")
	run("-n", l.GW, "link", "set", vgw, "up")
	run("-n", l.GW, "addr", "add", DNSAddr.String()+"/32", "dev", "lo")
	if g.IPv6 {
		run("-n", l.GW, "addr", "add", DNSAddr6.String()+"/128", "dev", "lo", "nodad")
	}

	l.writeConfigs(t, g)
	l.env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(l.dir, "strongswan.conf"), "SWANCTL_DIR="+l.dir)
	l.charonArgs = []string{ip, "netns", "exec", l.GW, "unshare", "-m", "sh", "-c",
		"mount -t tmpfs tmpfs /run && mkdir -p /run/strongswan && exec " + charon}
	l.startDaemon(t, "nsd", ip, "netns", "exec", l.GW, nsd, "-d", "-c", filepath.Join(l.dir, "nsd.conf"))
	l.startCharon(t)
	return l
}

// startCharon starts charon, waits for its vici socket and loads the
// configuration.
func (l *Lab) startCharon(t testing.TB) {
	t.Helper()
	l.stopCharon = l.startDaemon(t, "charon", l.charonArgs...)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command(l.swanctl, "--stats")
		cmd.Env = l.env
		if cmd.Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon did not come up; log:\n%s", l.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.Swanctl(t, "--load-all", "--file", filepath.Join(l.dir, "swanctl.conf"))
}

// Reconfigure rewrites the gateway's configuration as g and reloads it
// (connections, secrets, pools), leaving established SAs alone.
func (l *Lab) Reconfigure(t testing.TB, g Gateway) {
	t.Helper()
	l.writeConfigs(t, g)
	l.Swanctl(t, "--load-all", "--file", filepath.Join(l.dir, "swanctl.conf"))
}

// Restart kills charon with SIGKILL (it forgets every SA without telling
// anyone, as in a crash) and starts it again with the same configuration.
func (l *Lab) Restart(t testing.TB) {
	t.Helper()
	l.stopCharon(unix.SIGKILL)
	l.startCharon(t)
}

func (l *Lab) startDaemon(t testing.TB, name string, args ...string) (stop func(unix.Signal)) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = l.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func(sig unix.Signal) {
		once.Do(func() {
			unix.Kill(-cmd.Process.Pid, sig)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
				<-done
			}
			logf.Close()
		})
	}
	t.Cleanup(func() {
		stop(unix.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, tail(b, 6000))
		}
	})
	return stop
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Log returns charon's log so far.
func (l *Lab) Log() string {
	b, _ := os.ReadFile(filepath.Join(l.dir, "charon.log"))
	return string(b)
}

// Swanctl runs swanctl against this gateway and returns its output.
func (l *Lab) Swanctl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(l.swanctl, args...)
	cmd.Env = l.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swanctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// DialUDP opens a UDP socket inside the client namespace, connected to the
// gateway's port. Sockets keep their namespace, so it works from anywhere.
func (l *Lab) DialUDP(t testing.TB, port uint16) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns("/run/netns/"+l.CL, func() error {
		var err error
		c, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(GatewayAddr, port)))
		return err
	})
	if err != nil {
		t.Fatalf("opening socket in %s: %v", l.CL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// inNetns runs f on a locked OS thread switched into the namespace at path.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- fmt.Errorf("restoring namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// WaitLog waits until charon's log contains s, within d.
func (l *Lab) WaitLog(ctx context.Context, s string) bool {
	for ctx.Err() == nil {
		if strings.Contains(l.Log(), s) {
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

func (l *Lab) writeConfigs(t testing.TB, g Gateway) {
	t.Helper()
	vici := "unix://" + filepath.Join(l.dir, "charon.vici")
	ss := charonConf(vici, "  port = 500\n  port_nat_t = 4500\n  retransmit_timeout = 1\n  retransmit_tries = 3\n"+g.CharonExtra, "      ike = 2\n")
	var remoteTS, pools, poolDef, certs string
	localTS := Internal.String()
	nsdV6 := ""
	if g.IPv6 {
		localTS += ", " + Internal6.String()
		nsdV6 = "  ip-address: " + DNSAddr6.String() + "\n"
	}
	if g.Cert != nil {
		certs = "      certs = gw.pem\n"
	}
	if g.Pool {
		remoteTS = "dynamic"
		pools = "    pools = inner\n"
		poolDef = "pools {\n  inner {\n    addrs = " + Pool.String() + "\n  }\n"
		if g.IPv6 {
			pools = "    pools = inner, inner6\n"
			poolDef += "  inner6 {\n    addrs = " + Pool6.String() + "\n  }\n"
		}
		poolDef += "}\n"
	} else {
		remoteTS = Pool.String()
		if g.IPv6 {
			remoteTS += ", " + Pool6.String()
		}
	}
	sw := fmt.Sprintf(`connections {
  dns {
    version = 2
    local_addrs = %s
    proposals = %s
%s%s
    local {
      auth = %s
      id = %s
%s    }
    remote {
      auth = %s
      id = %s
    }
    children {
      internal {
        local_ts = %s
        remote_ts = %s
        esp_proposals = %s
        mode = tunnel
%s
      }
    }
  }
}
secrets {
  ike-1 {
    id-1 = %s
    id-2 = %s
    secret = "%s"
  }
}
%s`, GatewayAddr, g.Proposals, pools, g.ConnExtra, or(g.LocalAuth, "psk"), g.LocalID, certs, or(g.RemoteAuth, "psk"), g.RemoteID, localTS, remoteTS, g.ESPProposals, g.ChildExtra,
		g.LocalID, g.RemoteID, g.PSK, poolDef)
	zone := fmt.Sprintf(`$ORIGIN %s
$TTL 300
@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 300
@ IN NS ns.%s
ns IN A %s
www IN A 192.0.2.80
`, Zone, Zone, Zone, Zone, DNSAddr)
	nsd := fmt.Sprintf(`server:
  ip-address: %s
%s  port: 53
  username: ""
  chroot: ""
  zonesdir: "%s"
  pidfile: "%s/nsd.pid"
  database: ""
  zonelistfile: "%s/zone.list"
  xfrdfile: "%s/xfrd.state"
  xfrdir: "%s"
  logfile: "%s/nsd-own.log"
  verbosity: 1
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: %s
  zonefile: lab.zone
`, DNSAddr, nsdV6, l.dir, l.dir, l.dir, l.dir, l.dir, l.dir, Zone)
	files := map[string]string{"strongswan.conf": ss, "swanctl.conf": sw, "lab.zone": zone, "nsd.conf": nsd}
	if g.SecondClient {
		files["swanctl.conf"] += secondClientGateway(g)
	}
	if g.Cert != nil {
		files["x509ca/ca.pem"], files["x509/gw.pem"], files["private/gw.key"] = string(g.CACert), string(g.Cert), string(g.Key)
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(l.dir, name)), 0o700)
		if err := os.WriteFile(filepath.Join(l.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// charonConf is a strongswan.conf for one userspace charon in a test
// namespace (kernel-libipsec, the route-hijacking plugins off, its own vici
// socket; see the interop notes §11). extra goes into the charon section and
// logExtra into its stderr log settings.
func charonConf(vici, extra, logExtra string) string {
	return fmt.Sprintf(`charon {
  install_routes = no
%s
  plugins {
    vici {
      socket = %s
    }
    kernel-libipsec {
      load = yes
    }
    kernel-netlink {
      load = yes
    }
    bypass-lan {
      load = no
    }
    forecast {
      load = no
    }
    farp {
      load = no
    }
    dhcp {
      load = no
    }
    tpm {
      load = no
    }
  }
  filelog {
    stderr {
      default = 1
%s    }
  }
}
swanctl {
  socket = %s
}
`, extra, vici, logExtra, vici)
}
