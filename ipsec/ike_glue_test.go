package ipsec_test

import (
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec"
	"github.com/laminadns/lamina/ipsec/ike"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

func labGateway() iketest.Gateway {
	return iketest.Gateway{
		Proposals:    "aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha256-ecp256",
		ESPProposals: "aes128gcm16",
		PSK:          "test-psk-0123456789",
		LocalID:      "gw.example",
		RemoteID:     "resolver.example",
		Pool:         true,
	}
}

func labIKE() ike.Config {
	return ike.Config{
		Local:             ike.FQDN("resolver.example"),
		Remote:            ike.FQDN("gw.example"),
		PSK:               []byte("test-psk-0123456789"),
		RemoteNets:        []netip.Prefix{iketest.Internal},
		RetransmitTimeout: 500 * time.Millisecond,
		RetransmitTries:   4,
	}
}

// dnsAnswerA checks a DNS response to DNSQuery(id, "www.lab.example.") and
// returns its first A record.
func dnsAnswerA(t *testing.T, m []byte, id uint16) netip.Addr {
	t.Helper()
	if len(m) < 12 || binary.BigEndian.Uint16(m) != id || m[3]&0x0f != 0 || binary.BigEndian.Uint16(m[6:]) == 0 {
		t.Fatalf("bad DNS answer % x", m)
	}
	i := 12
	for m[i] != 0 {
		i += 1 + int(m[i])
	}
	i += 5 // root label, QTYPE, QCLASS
	if m[i]&0xc0 == 0xc0 {
		i += 2
	} else {
		t.Fatalf("answer owner not compressed: % x", m)
	}
	if binary.BigEndian.Uint16(m[i:]) != 1 || binary.BigEndian.Uint16(m[i+8:]) != 4 {
		t.Fatalf("first answer not an A record: % x", m)
	}
	return netip.AddrFrom4([4]byte(m[i+10 : i+14]))
}

// TestIKETunnelStrongSwan brings the whole tunnel up against strongSwan with
// IKEv2 (PSK, INVALID_KE retry to X25519, AES-GCM, virtual IP via CP) and
// resolves a name at NSD behind the gateway over UDP and TCP through
// netstack and ESP-in-UDP; Close deletes the IKE SA at the gateway.
func TestIKETunnelStrongSwan(t *testing.T) {
	lab := iketest.Start(t, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, labIKE())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	st := tun.IKEStatus()
	if !st.Up || len(st.Info.VirtualIPs) != 1 || !iketest.Pool.Contains(st.Info.VirtualIPs[0]) {
		t.Fatalf("status %+v", st)
	}
	dnsAddr := netip.AddrPortFrom(iketest.DNSAddr, 53).String()

	u, err := tun.DialContext(ctx, "udp", dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1500)
	var n int
	for try := 0; try < 3; try++ {
		if _, err := u.Write(iketest.DNSQuery(0x1234, "www."+iketest.Zone)); err != nil {
			t.Fatal(err)
		}
		u.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err = u.Read(buf); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("UDP query through the tunnel: %v", err)
	}
	if a := dnsAnswerA(t, buf[:n], 0x1234); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("UDP answer %v", a)
	}

	c, err := tun.DialContext(ctx, "tcp", dnsAddr)
	if err != nil {
		t.Fatalf("TCP dial through the tunnel: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	q := iketest.DNSQuery(0x4321, "www."+iketest.Zone)
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		t.Fatal(err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	if a := dnsAnswerA(t, resp, 0x4321); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("TCP answer %v", a)
	}

	if _, err := tun.DialContext(ctx, "udp", "10.99.0.1:53"); err == nil {
		t.Error("dial outside the negotiated TSr succeeded")
	}
	if err := tun.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !lab.WaitLog(ctx, "received DELETE for IKE_SA") {
		t.Error("gateway saw no DELETE")
	}
	if strings.Contains(lab.Swanctl(t, "--list-sas"), "ESTABLISHED") {
		t.Error("gateway still lists an established SA")
	}
}

func queryUDP(t *testing.T, ctx context.Context, tun *ipsec.IKETunnel, id uint16) {
	t.Helper()
	u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr, 53).String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := u.Write(iketest.DNSQuery(id, "www."+iketest.Zone)); err != nil {
			t.Fatal(err)
		}
		u.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := u.Read(buf)
		if err == nil {
			if a := dnsAnswerA(t, buf[:n], id); a != netip.MustParseAddr("192.0.2.80") {
				t.Fatalf("answer %v", a)
			}
			return
		}
	}
	t.Fatalf("query %#x through the tunnel got no answer", id)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIKETunnelGatewayRekeys: strongSwan rekeys the CHILD_SA (we answer,
// install the new inbound SA, switch outbound when the gateway deletes the
// old one) and then the IKE SA (role flip, message IDs from 0); queries work
// after each, and a further CHILD rekey runs over the new IKE SA.
func TestIKETunnelGatewayRekeys(t *testing.T) {
	lab := iketest.Start(t, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.ChildRekey = -1
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	queryUDP(t, ctx, tun, 1)
	spi0, _ := tun.Outbound()

	lab.Swanctl(t, "--rekey", "--child", "internal")
	waitFor(t, "outbound switch after the gateway's CHILD rekey", func() bool { s, ok := tun.Outbound(); return ok && s != spi0 })
	queryUDP(t, ctx, tun, 2)
	spi1, _ := tun.Outbound()

	lab.Swanctl(t, "--rekey", "--ike", "dns")
	waitFor(t, "the gateway's IKE rekey", func() bool {
		return strings.Contains(lab.Log(), "rekeyed between") && strings.Contains(lab.Log(), "REKEYED => DELETING")
	})
	queryUDP(t, ctx, tun, 3)

	lab.Swanctl(t, "--rekey", "--child", "internal")
	waitFor(t, "CHILD rekey over the new IKE SA", func() bool { s, ok := tun.Outbound(); return ok && s != spi1 })
	queryUDP(t, ctx, tun, 4)
	if st := tun.IKEStatus(); !st.Up || st.Ups != 1 {
		t.Fatalf("status %+v: the IKE SA was re-established instead of rekeyed", st)
	}
	if err := tun.Close(); err != nil {
		t.Fatalf("Close over the rekeyed IKE SA: %v", err)
	}
	if !lab.WaitLog(ctx, "received DELETE for IKE_SA") {
		t.Error("gateway saw no DELETE on the rekeyed IKE SA")
	}
}

// TestIKETunnelOwnRekey: Lamina rekeys the CHILD_SA itself on its soft
// lifetime, switches outbound and deletes the old SA; queries keep working.
func TestIKETunnelOwnRekey(t *testing.T) {
	lab := iketest.Start(t, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.ChildRekey = 2 * time.Second
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	queryUDP(t, ctx, tun, 1)
	spi0, _ := tun.Outbound()
	waitFor(t, "our first CHILD rekey", func() bool { s, ok := tun.Outbound(); return ok && s != spi0 })
	queryUDP(t, ctx, tun, 2)
	spi1, _ := tun.Outbound()
	waitFor(t, "our second CHILD rekey", func() bool { s, ok := tun.Outbound(); return ok && s != spi1 })
	queryUDP(t, ctx, tun, 3)
	if n := strings.Count(lab.Swanctl(t, "--list-sas"), "INSTALLED"); n != 1 {
		t.Errorf("gateway lists %d installed CHILD_SAs, want 1 (old ones deleted)", n)
	}
}

// TestIKETunnelGatewayRestart: the gateway restarts and forgets every SA;
// dead peer detection notices, the tunnel re-establishes (INITIAL_CONTACT)
// with backoff and queries work again within the bound below.
func TestIKETunnelGatewayRestart(t *testing.T) {
	lab := iketest.Start(t, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.DPDDelay = time.Second
	cfg.RetransmitTimeout = 300 * time.Millisecond
	cfg.RetransmitTries = 3
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	queryUDP(t, ctx, tun, 1)
	lab.Restart(t)
	start := time.Now()
	// DPD after 1 s of silence, 3 tries (0.3+0.54+0.97 s), 1 s backoff,
	// then IKE_SA_INIT and IKE_AUTH: well under 15 s.
	waitFor(t, "re-establishment", func() bool { st := tun.IKEStatus(); return st.Up && st.Ups == 2 })
	queryUDP(t, ctx, tun, 2)
	t.Logf("queries succeed again %v after the gateway restart", time.Since(start).Round(100*time.Millisecond))
	if st := tun.IKEStatus(); st.LastErr != nil {
		t.Errorf("LastErr %v after recovery", st.LastErr)
	}
	if n := strings.Count(lab.Log(), "generating IKE_SA_INIT response 0 [ N(INVAL_KE) ]"); n != 1 {
		t.Errorf("%d INVALID_KE_PAYLOAD answers: the re-establishment did not reuse the accepted group", n)
	}
}

// TestIKETunnelRekeySoak keeps 4 query loops running over the tunnel while
// both sides rekey CHILD_SAs every few seconds and the gateway rekeys the
// IKE SA: no query may be lost. 10 s give about 25 CHILD and 2 IKE rekeys;
// LAMINA_IPSEC_SOAK=3m runs the long form.
func TestIKETunnelRekeySoak(t *testing.T) {
	g := labGateway()
	// Hard lifetimes well past the rekey times: an IKE SA expiring while
	// its rekey waits behind a CHILD exchange is deleted, not rekeyed.
	g.ConnExtra = "    rekey_time = 5s\n    over_time = 30s\n    rand_time = 1s\n"
	g.ChildExtra = "        rekey_time = 2s\n        life_time = 30s\n        rand_time = 1s\n"
	lab := iketest.Start(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := labIKE()
	cfg.ChildRekey = 2500 * time.Millisecond
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	dur := 10 * time.Second
	if testing.Short() {
		dur = 4 * time.Second
	}
	if d, err := time.ParseDuration(os.Getenv("LAMINA_IPSEC_SOAK")); err == nil {
		dur = d // e.g. LAMINA_IPSEC_SOAK=3m for the long form
	}
	var sent, lost atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr, 53).String())
			if err != nil {
				t.Error(err)
				return
			}
			defer u.Close()
			buf := make([]byte, 1500)
			for id := uint16(w << 12); time.Now().Before(deadline); id++ {
				sent.Add(1)
				u.Write(iketest.DNSQuery(id, "www."+iketest.Zone))
				u.SetReadDeadline(time.Now().Add(2 * time.Second))
				for {
					n, err := u.Read(buf)
					if err != nil {
						lost.Add(1)
						t.Logf("query %#x lost: %v", id, err)
						break
					}
					if n >= 2 && binary.BigEndian.Uint16(buf) == id {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	log := lab.Log()
	childRekeys := strings.Count(log, "CHILD_SA internal{") - 1
	ikeRekeys := strings.Count(log, "rekeyed between")
	t.Logf("%d queries, %d lost, %d CHILD_SAs rekeyed, %d IKE rekeys, %d rekey collisions answered with TEMPORARY_FAILURE in %v",
		sent.Load(), lost.Load(), strings.Count(log, "established with SPIs")-1, ikeRekeys, strings.Count(log, "N(TEMP_FAIL)"), dur)
	if lost.Load() != 0 {
		t.Errorf("%d of %d queries lost across rekeys", lost.Load(), sent.Load())
	}
	if childRekeys < 3 {
		t.Errorf("only %d CHILD rekeys happened", childRekeys)
	}
	if st := tun.IKEStatus(); !st.Up || st.Ups != 1 {
		t.Errorf("status %+v: the IKE SA was re-established instead of rekeyed", st)
	}
}

// TestIKETunnelStaticInner: without a pool at the gateway, a configured
// inner address is proposed as TSi and used by the netstack.
func TestIKETunnelStaticInner(t *testing.T) {
	g := labGateway()
	g.Pool = false
	lab := iketest.Start(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.InnerAddress = netip.MustParseAddr("10.201.0.2")
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	st := tun.IKEStatus()
	if len(st.Info.VirtualIPs) != 0 || len(st.Info.Local) != 1 || st.Info.Local[0].StartAddr != cfg.InnerAddress {
		t.Fatalf("status %+v", st)
	}
	queryUDP(t, ctx, tun, 7)
	if !strings.Contains(lab.Log(), "10.200.0.0/24 === 10.201.0.2/32") {
		t.Error("gateway did not narrow to our inner address")
	}
}

// TestIKETunnelIPv6Inner: with IPv6 remote networks we also get an IPv6
// virtual IP via CP and resolve over IPv6 inside the (IPv4) tunnel.
func TestIKETunnelIPv6Inner(t *testing.T) {
	g := labGateway()
	g.IPv6 = true
	lab := iketest.Start(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.RemoteNets = []netip.Prefix{iketest.Internal, iketest.Internal6}
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	st := tun.IKEStatus()
	var v6 bool
	for _, a := range st.Info.VirtualIPs {
		v6 = v6 || iketest.Pool6.Contains(a)
	}
	if len(st.Info.VirtualIPs) != 2 || !v6 {
		t.Fatalf("virtual IPs %v, want one IPv4 and one in %v", st.Info.VirtualIPs, iketest.Pool6)
	}
	u, err := tun.DialContext(ctx, "udp", netip.AddrPortFrom(iketest.DNSAddr6, 53).String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 1500)
	for try := 0; ; try++ {
		u.Write(iketest.DNSQuery(0x6666, "www."+iketest.Zone))
		u.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := u.Read(buf)
		if err == nil {
			if a := dnsAnswerA(t, buf[:n], 0x6666); a != netip.MustParseAddr("192.0.2.80") {
				t.Fatalf("answer %v", a)
			}
			break
		}
		if try == 2 {
			t.Fatalf("no answer over IPv6 through the tunnel: %v", err)
		}
	}
	queryUDP(t, ctx, tun, 8) // IPv4 still works
}

// TestIKETunnelAuthFailureBackoff: after the gateway changes its PSK and
// drops us, re-establishment fails with AUTHENTICATION_FAILED, shown in the
// status, and is retried with growing delays (no tight loop); once the PSK
// matches again the tunnel comes back by itself.
func TestIKETunnelAuthFailureBackoff(t *testing.T) {
	g := labGateway()
	lab := iketest.Start(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, labIKE())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	bad := g
	bad.PSK = "another-psk-9876543210"
	lab.Reconfigure(t, bad)
	before := strings.Count(lab.Log(), "parsed IKE_AUTH request")
	lab.Swanctl(t, "--terminate", "--ike", "dns")
	waitFor(t, "an authentication failure in the status", func() bool {
		st := tun.IKEStatus()
		return !st.Up && st.LastErr != nil && strings.Contains(st.LastErr.Error(), "AUTHENTICATION_FAILED")
	})
	time.Sleep(4 * time.Second)
	attempts := strings.Count(lab.Log(), "parsed IKE_AUTH request") - before
	t.Logf("%d IKE_AUTH attempts in the first ~5 s of failure", attempts)
	if attempts < 1 || attempts > 4 {
		t.Errorf("%d attempts: want backoff (1 s, 2 s, 4 s …)", attempts)
	}
	lab.Reconfigure(t, g)
	waitFor(t, "recovery once the PSK matches", func() bool { return tun.IKEStatus().Up })
	queryUDP(t, ctx, tun, 9)
}

// TestIKETunnelDPDQuietUnderTraffic: while ESP traffic arrives we do not
// send DPD probes (RFC 7296 §2.4); once idle, we do.
func TestIKETunnelDPDQuietUnderTraffic(t *testing.T) {
	lab := iketest.Start(t, labGateway())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := labIKE()
	cfg.DPDDelay = 300 * time.Millisecond
	tun, err := ipsec.Dial(ctx, ipsec.Config{Conn: lab.DialUDP(t, 4500)}, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer tun.Close()
	probes := func() int { return strings.Count(lab.Log(), "parsed INFORMATIONAL request") }
	before := probes()
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		queryUDP(t, ctx, tun, 0x77)
	}
	if n := probes() - before; n > 1 {
		t.Errorf("%d DPD probes while traffic flowed", n)
	}
	waitFor(t, "a DPD probe when idle", func() bool { return probes() > before+1 })
}
