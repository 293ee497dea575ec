package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

func TestTunnelProposals(t *testing.T) {
	ps, err := proposals([]string{"aes256gcm16-prfsha384-x25519", "aes128-sha256-ecp256-modp2048"}, true)
	if err != nil || len(ps) != 2 || ps[0].Encryption[0].Bits != 256 || len(ps[0].PRF) != 1 || len(ps[1].PRF) != 1 || len(ps[1].Groups) != 2 {
		t.Errorf("proposals = %+v, %v", ps, err)
	}
	if _, err := proposals([]string{"aes256gcm16-md5"}, false); err == nil {
		t.Error("md5 accepted")
	}
	if id := identity("192.0.2.1"); id.Type != 1 || len(id.Value) != 4 {
		t.Errorf("IPv4 identity = %+v", id)
	}
	if id := identity("me@example.com"); id.Type != 3 {
		t.Errorf("email identity = %+v", id)
	}
}

// TestTunnelToStrongSwan runs lamina in a client network namespace with an
// IPsec tunnel (its own IKEv2, PSK, virtual IP) to a strongSwan gateway in
// another namespace, behind which NSD serves lab.example: lab.example is
// routed through the tunnel over UDP and TCP, and the tunnel's metrics show
// the traffic.
func TestTunnelToStrongSwan(t *testing.T) {
	t.Parallel()
	ip := testenv.Tool(t, "ip")
	lab := iketest.Start(t, iketest.Gateway{
		Proposals:    "aes256gcm16-prfsha256-x25519",
		ESPProposals: "aes256gcm16",
		PSK:          "lamina-cmd-test-psk-0123",
		LocalID:      "gw.example",
		RemoteID:     "resolver.example",
		Pool:         true,
	})
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {url: "udp://127.0.0.1:5353"}
  - {url: "tcp://127.0.0.1:5353"}
tunnels:
  - name: branch
    gateway: %s
    local_id: resolver.example
    remote_id: gw.example
    psk_env: LAMINA_TEST_PSK
    ike_proposals: [aes256gcm16-prfsha256-x25519]
    esp_proposals: [aes256gcm16]
    remote_subnets: [%s]
upstream_groups:
  - {name: corp, tunnel: branch, upstreams: ["udp://%s"]}
routes:
  - {zone: %s, group: corp}
`, iketest.GatewayAddr, iketest.Internal, iketest.DNSAddr, iketest.Zone))
	in := func(args ...string) *exec.Cmd {
		return exec.Command(ip, append([]string{"netns", "exec", lab.CL}, args...)...)
	}
	cmd := in(laminaBin, "serve", "-config", cfg, "-admin", "127.0.0.1:9153")
	cmd.Env = append(os.Environ(), "LAMINA_TEST_PSK=lamina-cmd-test-psk-0123")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("lamina output:\n%s", out)
		}
	}()

	kdigBin := testenv.Tool(t, "kdig")
	query := func(extra ...string) string {
		args := append([]string{kdigBin, "@127.0.0.1", "-p", "5353", "+time=2", "+retry=0", "+short"}, extra...)
		b, _ := in(append(args, "www."+iketest.Zone)...).CombinedOutput()
		return strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(30 * time.Second)
	for query() != "192.0.2.80" {
		if time.Now().After(deadline) {
			t.Fatalf("www.%s never resolved through the tunnel", iketest.Zone)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if got := query("+tcp"); got != "192.0.2.80" {
		t.Errorf("over TCP to lamina: %q", got)
	}
	m, err := in("curl", "-s", "http://127.0.0.1:9153/metrics").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m), `lamina_ipsec_tunnel_up{tunnel="branch"} 1`) ||
		!regexp.MustCompile(`lamina_ipsec_packets_total\{direction="in",tunnel="branch"\} [1-9]`).Match(m) {
		t.Errorf("tunnel metrics:\n%s", regexp.MustCompile(`(?m)^lamina_ipsec.*$`).FindAll(m, -1))
	}
	sj, err := in("curl", "-s", "http://127.0.0.1:9153/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	var st status
	if err := json.Unmarshal(sj, &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, sj)
	}
	if len(st.Tunnels) != 1 || !st.Tunnels[0].Up || len(st.Tunnels[0].SAs) < 2 || st.Tunnels[0].SAs[0].Suite == "" ||
		len(st.Tunnels[0].VirtualIPs) != 1 || len(st.Routes) != 1 || st.Routes[0].Path != "tunnel branch" {
		t.Errorf("/status:\n%s", sj)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit status %d after SIGTERM", code)
		}
	case <-time.After(15 * time.Second):
		t.Error("lamina did not stop")
	}
}

// TestTunnelDownServfail: while a tunnel cannot come up, names routed
// through it get SERVFAIL with an EDE at once, and are never sent to the
// public group (which would answer them).
func TestTunnelDownServfail(t *testing.T) {
	t.Parallel()
	public := startNSD(t, map[string]string{"corp.example.": "www IN A 203.0.113.66\n"})
	addr := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners: [{url: "udp://%s"}]
tunnels:
  - {name: branch, gateway: "%s", local_id: lamina.example, psk_env: LAMINA_TEST_PSK, remote_subnets: [10.200.0.0/24]}
upstream_groups:
  - {name: corp, tunnel: branch, upstreams: ["udp://10.200.0.53"]}
  - {name: public, upstreams: ["udp://%s"]}
routes:
  - {zone: corp.example, group: corp}
  - {zone: ., group: public}
`, addr, freeAddr(t), public.addr))
	p := startLaminaEnv(t, []string{"LAMINA_TEST_PSK=not-used-for-long"}, addr, "-config", cfg)
	start := time.Now()
	r := mustExchange(t, addr, "udp", "www.corp.example", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure || ede(r) < 0 || len(r.Answer) != 0 {
		t.Errorf("internal name with the tunnel down: %s EDE %d %v", dns.RcodeToString[r.Rcode], ede(r), r.Answer)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("SERVFAIL took %v", d)
	}
	if !strings.Contains(p.metrics(t), `lamina_ipsec_tunnel_up{tunnel="branch"} 0`) {
		t.Error("tunnel reported up")
	}
}
