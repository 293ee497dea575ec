package iketest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
)

// The second client's link to the gateway and its virtual IPs.
var (
	Client2Addr  = netip.MustParseAddr("198.51.100.1")
	Gateway2Addr = netip.MustParseAddr("198.51.100.2")
	Pool2        = netip.MustParsePrefix("10.202.0.0/24")
)

func secondClientGateway(g Gateway) string {
	return fmt.Sprintf(`
connections {
  dns2 {
    version = 2
    local_addrs = %s
    proposals = %s
    pools = inner2
    local {
      auth = psk
      id = %s
    }
    remote {
      auth = psk
      id = client2.example
    }
    children {
      internal2 {
        local_ts = %s
        remote_ts = dynamic
        esp_proposals = %s
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-2 {
    id-1 = %s
    id-2 = client2.example
    secret = "%s"
  }
}
pools {
  inner2 {
    addrs = %s
  }
}
`, Gateway2Addr, g.Proposals, g.LocalID, Internal, g.ESPProposals, g.LocalID, g.PSK, Pool2)
}

// StrongSwanClient starts a strongSwan initiator (charon with
// kernel-libipsec, UDP encapsulation forced) in a third namespace linked to
// the gateway on 198.51.100.0/24, for comparisons with Lamina's tunnel. The
// gateway must have been started with SecondClient. It returns the
// namespace once the client's CHILD_SA (virtual IP from Pool2, traffic to
// Internal) is up.
func (l *Lab) StrongSwanClient(t testing.TB, g Gateway) string {
	t.Helper()
	ip := testenv.Tool(t, "ip")
	charon := testenv.Tool(t, "charon")
	ns := strings.Replace(l.CL, "lam-cl-", "lam-c2-", 1)
	id := strings.TrimPrefix(l.CL, "lam-cl-")
	vc, vg := "mc"+strings.ReplaceAll(id, "-", "x"), "mg"+strings.ReplaceAll(id, "-", "x")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	run("link", "add", vc, "type", "veth", "peer", "name", vg)
	run("link", "set", vc, "netns", ns)
	run("link", "set", vg, "netns", l.GW)
	run("-n", ns, "addr", "add", Client2Addr.String()+"/24", "dev", vc)
	run("-n", l.GW, "addr", "add", Gateway2Addr.String()+"/24", "dev", vg)
	run("-n", ns, "link", "set", "lo", "up")
	run("-n", ns, "link", "set", vc, "up")
	run("-n", l.GW, "link", "set", vg, "up")

	dir := filepath.Join(l.dir, "client2")
	os.MkdirAll(dir, 0o700)
	vici := "unix://" + filepath.Join(dir, "charon.vici")
	conf := charonConf(vici, "", "")
	sw := fmt.Sprintf(`connections {
  c {
    version = 2
    local_addrs = %s
    remote_addrs = %s
    vips = 0.0.0.0
    encap = yes
    proposals = %s
    local {
      auth = psk
      id = client2.example
    }
    remote {
      auth = psk
      id = %s
    }
    children {
      c {
        remote_ts = %s
        esp_proposals = %s
      }
    }
  }
}
secrets {
  ike-1 {
    id-1 = client2.example
    id-2 = %s
    secret = "%s"
  }
}
`, Client2Addr, Gateway2Addr, strings.Split(g.Proposals, ",")[0], g.LocalID, Internal, g.ESPProposals, g.LocalID, g.PSK)
	os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o600)
	os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(sw), 0o600)
	env := append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"), "SWANCTL_DIR="+dir)
	saved := l.env
	l.env = env
	defer func() { l.env = saved }()
	l.startDaemon(t, "charon-client2", ip, "netns", "exec", ns, "unshare", "-m", "sh", "-c",
		"mount -t tmpfs tmpfs /run && mkdir -p /run/strongswan && exec "+charon)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command(l.swanctl, "--stats")
		cmd.Env = env
		if cmd.Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client charon did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.Swanctl(t, "--load-all", "--file", filepath.Join(dir, "swanctl.conf"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.swanctl, "--initiate", "--child", "c", "--timeout", "15")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("strongSwan client did not connect: %v\n%s", err, out)
	}
	return ns
}
