package ipsec_test

import (
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"strings"
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
