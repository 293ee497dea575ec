package ike_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
	"github.com/laminadns/lamina/ipsec/ike"
	"github.com/laminadns/lamina/ipsec/ike/iketest"
	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// keyer records CHILD_SAs as the ESP layer would.
type keyer struct {
	mu       sync.Mutex
	children map[uint32]ike.ChildSA
	added    chan ike.ChildSA
	deleted  chan uint32
}

func newKeyer() *keyer {
	return &keyer{children: map[uint32]ike.ChildSA{}, added: make(chan ike.ChildSA, 64), deleted: make(chan uint32, 16)}
}

func (k *keyer) AddChild(c ike.ChildSA) error {
	k.mu.Lock()
	k.children[c.InSPI] = c
	k.mu.Unlock()
	k.added <- c
	return nil
}

func (k *keyer) ActivateChild(spi uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.children[spi]; !ok {
		return errors.New("no such child")
	}
	return nil
}

func (k *keyer) DeleteChild(spi uint32) {
	k.mu.Lock()
	delete(k.children, spi)
	k.mu.Unlock()
	select {
	case k.deleted <- spi:
	default: // tests that do not watch deletions must not block the session
	}
}

func gateway() iketest.Gateway {
	return iketest.Gateway{
		// The gateway prefers X25519; Lamina offers P-256 first, so the
		// first IKE_SA_INIT is answered with INVALID_KE_PAYLOAD(31).
		Proposals:    "aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha256-ecp256",
		ESPProposals: "aes128gcm16",
		PSK:          "test-psk-0123456789",
		LocalID:      "gw.example",
		RemoteID:     "resolver.example",
		Pool:         true,
	}
}

func config(c *iketest.Conn, psk string) ike.Config {
	return ike.Config{
		Local:             ike.FQDN("resolver.example"),
		Remote:            ike.FQDN("gw.example"),
		PSK:               []byte(psk),
		LocalAddr:         c.UDP.LocalAddr().(*net.UDPAddr).AddrPort(),
		RemoteAddr:        netip.AddrPortFrom(iketest.GatewayAddr, 4500),
		RemoteNets:        []netip.Prefix{iketest.Internal},
		InitialContact:    true,
		RetransmitTimeout: 500 * time.Millisecond,
		RetransmitTries:   4,
	}
}

func dial(t *testing.T, lab *iketest.Lab, cfg func(*ike.Config)) (*ike.Session, *iketest.Conn, *keyer, error) {
	t.Helper()
	c := iketest.NewConn(lab.DialUDP(t, 4500))
	k := newKeyer()
	conf := config(c, "test-psk-0123456789")
	if cfg != nil {
		cfg(&conf)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := ike.Dial(ctx, c, k, conf)
	if err == nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Close(ctx)
		})
	}
	return s, c, k, err
}

// queryThroughTunnel sends a DNS query for www.lab.example over the CHILD_SA
// to NSD behind the gateway and returns the answer's first A record.
func queryThroughTunnel(t *testing.T, c *iketest.Conn, child ike.ChildSA, src netip.Addr) netip.Addr {
	t.Helper()
	suite := esp.Suite{Cipher: esp.Cipher(child.Cipher), KeyBits: child.KeyBits, Integ: esp.Integ(child.Integ)}
	out, err := esp.New(esp.Config{SPI: child.OutSPI, Direction: esp.Outbound, Suite: suite, EncKey: child.OutKey, IntegKey: child.OutInteg})
	if err != nil {
		t.Fatal(err)
	}
	in, err := esp.New(esp.Config{SPI: child.InSPI, Direction: esp.Inbound, Suite: suite, EncKey: child.InKey, IntegKey: child.InInteg})
	if err != nil {
		t.Fatal(err)
	}
	for try := uint16(1); try <= 3; try++ {
		pkt := iketest.UDP4(netip.AddrPortFrom(src, 40000+try), netip.AddrPortFrom(iketest.DNSAddr, 53), iketest.DNSQuery(0x4c00+try, "www."+iketest.Zone))
		buf := make([]byte, esp.MaxHeadroom+len(pkt), esp.MaxHeadroom+len(pkt)+esp.MaxTailroom)
		copy(buf[esp.MaxHeadroom:], pkt)
		sealed, err := out.Seal(buf, esp.MaxHeadroom, len(pkt), esp.NextHeaderIPv4)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UDP.Write(sealed); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(3 * time.Second)
		for waiting := true; waiting; {
			select {
			case <-timeout:
				waiting = false
			case p := <-c.ESP:
				inner, nh, err := in.Open(p)
				if err != nil || nh != esp.NextHeaderIPv4 {
					t.Logf("dropping ESP packet: %v", err)
					continue
				}
				from, dns, err := iketest.ParseUDP4(inner)
				if err != nil || from != netip.AddrPortFrom(iketest.DNSAddr, 53) || len(dns) < 12 || binary.BigEndian.Uint16(dns) != 0x4c00+try {
					continue
				}
				if dns[3]&0x0f != 0 || binary.BigEndian.Uint16(dns[6:]) == 0 {
					t.Fatalf("DNS answer rcode %d, %d answers", dns[3]&0x0f, binary.BigEndian.Uint16(dns[6:]))
				}
				return firstA(t, dns)
			}
		}
	}
	t.Fatal("no DNS answer through the tunnel")
	return netip.Addr{}
}

// TestStrongSwanPSK brings up an IKE SA with PSK against strongSwan: the
// gateway rejects our P-256 KE with INVALID_KE_PAYLOAD and we retry with
// X25519; AES-GCM-128 CHILD_SA; a virtual IP via CP; a DNS query through
// ESP-in-UDP to NSD proves the CHILD_SA keys; Close deletes the IKE SA.
func TestStrongSwanPSK(t *testing.T) {
	lab := iketest.Start(t, gateway())
	s, c, k, err := dial(t, lab, nil)
	if err != nil {
		t.Fatalf("Dial: %v\n%s", err, lab.Log())
	}
	info := s.Info()
	if info.Group != wire.GroupX25519 {
		t.Errorf("group %d, want X25519 after INVALID_KE", info.Group)
	}
	if !strings.Contains(lab.Log(), "INVAL_KE") {
		t.Errorf("gateway log shows no INVALID_KE_PAYLOAD exchange")
	}
	if !strings.Contains(lab.Log(), "behind NAT") {
		t.Errorf("gateway did not detect the forced NAT")
	}
	if len(info.VirtualIPs) != 1 || !iketest.Pool.Contains(info.VirtualIPs[0]) {
		t.Fatalf("virtual IPs %v, want one in %v", info.VirtualIPs, iketest.Pool)
	}
	child := <-k.added
	if child.Cipher != wire.EncrAESGCM16 || child.KeyBits != 128 || len(child.OutKey) != 20 {
		t.Fatalf("child %+v", child)
	}
	if got := ike.Prefixes(child.Remote[0]); len(got) != 1 || got[0] != iketest.Internal {
		t.Errorf("TSr %v, want %v", got, iketest.Internal)
	}
	if got := ike.Prefixes(child.Local[0]); len(got) != 1 || got[0] != netip.PrefixFrom(info.VirtualIPs[0], 32) {
		t.Errorf("TSi %v, want the virtual IP", got)
	}
	if a := queryThroughTunnel(t, c, child, info.VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("A record %v", a)
	}
	sas := lab.Swanctl(t, "--list-sas")
	if !strings.Contains(sas, "ESTABLISHED") || !strings.Contains(sas, "INSTALLED, TUNNEL-in-UDP") {
		t.Errorf("gateway SAs:\n%s", sas)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case spi := <-k.deleted:
		if spi != child.InSPI {
			t.Errorf("deleted %08x, want %08x", spi, child.InSPI)
		}
	case <-ctx.Done():
		t.Fatal("CHILD_SA not removed on Close")
	}
	if !lab.WaitLog(ctx, "deleting IKE_SA") {
		t.Errorf("gateway did not log the IKE SA deletion")
	}
}

// TestStrongSwanWrongPSK: a wrong PSK fails Dial with AUTHENTICATION_FAILED.
func TestStrongSwanWrongPSK(t *testing.T) {
	lab := iketest.Start(t, gateway())
	_, _, _, err := dial(t, lab, func(c *ike.Config) { c.PSK = []byte("not-the-psk") })
	if !errors.Is(err, ike.ErrAuth) || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("Dial error %v, want AUTHENTICATION_FAILED", err)
	}
	var ne *ike.NotifyError
	if !errors.As(err, &ne) || ne.Type != wire.NotifyAuthenticationFailed {
		t.Fatalf("error %v is not a NotifyError", err)
	}
}

// firstA returns the RDATA of the first answer record, which must be an A.
func firstA(t *testing.T, m []byte) netip.Addr {
	t.Helper()
	skipName := func(i int) int {
		for i < len(m) {
			switch l := int(m[i]); {
			case l == 0:
				return i + 1
			case l&0xc0 == 0xc0:
				return i + 2
			default:
				i += 1 + l
			}
		}
		return len(m)
	}
	i := skipName(12) + 4 // question
	i = skipName(i)       // answer owner
	if i+10+4 > len(m) || binary.BigEndian.Uint16(m[i:]) != 1 || binary.BigEndian.Uint16(m[i+8:]) != 4 {
		t.Fatalf("first answer is not an A record: % x", m)
	}
	return netip.AddrFrom4([4]byte(m[i+10 : i+14]))
}

// TestStrongSwanProposals runs each proposal family against a gateway that
// insists on it, and proves the CHILD_SA keys with a DNS query.
func TestStrongSwanProposals(t *testing.T) {
	tests := []struct {
		name, ike, esp string
		group, cipher  uint16
		bits           int
	}{
		{"gcm256-sha384-p256/chacha", "aes256gcm16-prfsha384-ecp256", "chacha20poly1305", wire.GroupECP256, wire.EncrChaCha20Poly1305, 256},
		{"cbc256-sha256-modp2048/cbc", "aes256-sha256-modp2048", "aes256-sha256", wire.GroupMODP2048, wire.EncrAESCBC, 256},
		{"chacha-sha512-p384/gcm256", "chacha20poly1305-prfsha512-ecp384", "aes256gcm16", wire.GroupECP384, wire.EncrAESGCM16, 256},
		{"cbc128-sha512-x25519/cbc128", "aes128-sha512-x25519", "aes128-sha256", wire.GroupX25519, wire.EncrAESCBC, 128},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := gateway()
			g.Proposals, g.ESPProposals = tc.ike, tc.esp
			lab := iketest.Start(t, g)
			s, c, k, err := dial(t, lab, nil)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			if s.Info().Group != tc.group {
				t.Errorf("group %d, want %d", s.Info().Group, tc.group)
			}
			child := <-k.added
			if child.Cipher != tc.cipher || child.KeyBits != tc.bits {
				t.Fatalf("child cipher %d/%d", child.Cipher, child.KeyBits)
			}
			if a := queryThroughTunnel(t, c, child, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
				t.Fatalf("A record %v", a)
			}
		})
	}
}

// TestStrongSwanFailures: unacceptable proposals and traffic selectors give
// clear errors, and an IKE SA left without its CHILD_SA is deleted.
func TestStrongSwanFailures(t *testing.T) {
	t.Run("no proposal", func(t *testing.T) {
		g := gateway()
		g.Proposals = "aes128ccm16-prfsha256-ecp521"
		lab := iketest.Start(t, g)
		_, _, _, err := dial(t, lab, nil)
		var ne *ike.NotifyError
		if !errors.As(err, &ne) || ne.Type != wire.NotifyNoProposalChosen {
			t.Fatalf("Dial error %v, want NO_PROPOSAL_CHOSEN", err)
		}
	})
	t.Run("no ESP proposal", func(t *testing.T) {
		g := gateway()
		g.ESPProposals = "aes128ccm16"
		lab := iketest.Start(t, g)
		_, _, _, err := dial(t, lab, nil)
		var ne *ike.NotifyError
		if !errors.As(err, &ne) || ne.Type != wire.NotifyNoProposalChosen {
			t.Fatalf("Dial error %v, want NO_PROPOSAL_CHOSEN", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if !lab.WaitLog(ctx, "received DELETE for IKE_SA") {
			t.Error("the useless IKE SA was not deleted")
		}
	})
	t.Run("TS unacceptable", func(t *testing.T) {
		lab := iketest.Start(t, gateway())
		_, _, _, err := dial(t, lab, func(c *ike.Config) { c.RemoteNets = []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")} })
		var ne *ike.NotifyError
		if !errors.As(err, &ne) || ne.Type != wire.NotifyTSUnacceptable || !strings.Contains(err.Error(), "TS_UNACCEPTABLE") {
			t.Fatalf("Dial error %v, want TS_UNACCEPTABLE", err)
		}
	})
}

// blackhole sends but never delivers anything: its IKE_SA_INIT leaves a
// half-open IKE SA at the gateway.
type blackhole struct{ c *iketest.Conn }

func (b blackhole) Send(p []byte) error { return b.c.Send(p) }
func (b blackhole) Receive(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestStrongSwanCookie: with a half-open IKE SA from our address pending and
// cookie_threshold_ip = 1, the gateway answers with a COOKIE and we retry
// with it first (RFC 7296 §2.6).
func TestStrongSwanCookie(t *testing.T) {
	g := gateway()
	g.Proposals = "aes128gcm16-prfsha256-ecp256" // no INVALID_KE: the first INIT leaves a half-open SA
	g.CharonExtra = "  cookie_threshold = 100\n  cookie_threshold_ip = 1\n  block_threshold = 100\n"
	lab := iketest.Start(t, g)
	half := iketest.NewConn(lab.DialUDP(t, 4500))
	cfg := config(half, "test-psk-0123456789")
	cfg.RetransmitTries = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if _, err := ike.Dial(ctx, blackhole{half}, newKeyer(), cfg); err == nil {
		t.Fatal("blackholed Dial succeeded")
	}
	cancel()
	if _, _, _, err := dial(t, lab, nil); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if !strings.Contains(lab.Log(), "parsed IKE_SA_INIT request 0 [ N(COOKIE) SA KE") {
		t.Fatal("no IKE_SA_INIT retry with the COOKIE first")
	}
}

// TestStrongSwanLiveness: we answer the gateway's DPD probes, and send our
// own after silence; a CHILD_SA and then the IKE SA deleted by the gateway
// are removed and end the session.
func TestStrongSwanLiveness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t.Run("our DPD", func(t *testing.T) {
		lab := iketest.Start(t, gateway())
		if _, _, _, err := dial(t, lab, func(c *ike.Config) { c.DPDDelay = 500 * time.Millisecond }); err != nil {
			t.Fatalf("Dial: %v", err)
		}
		if !lab.WaitLog(ctx, "parsed INFORMATIONAL request 3 [ ]") {
			t.Fatal("we did not probe the silent gateway twice")
		}
	})
	g := gateway()
	g.ConnExtra = "    dpd_delay = 1s\n"
	lab := iketest.Start(t, g)
	s, _, k, err := dial(t, lab, func(c *ike.Config) { c.DPDDelay = -1 })
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	child := <-k.added
	if !lab.WaitLog(ctx, "parsed INFORMATIONAL response 1 [ ]") {
		t.Fatal("we did not answer the gateway's DPD probes")
	}
	if !strings.Contains(lab.Swanctl(t, "--list-sas"), "ESTABLISHED") {
		t.Fatal("IKE SA gone after DPD")
	}
	lab.Swanctl(t, "--terminate", "--child", "internal")
	select {
	case spi := <-k.deleted:
		if spi != child.InSPI {
			t.Fatalf("deleted %08x, want %08x", spi, child.InSPI)
		}
	case <-ctx.Done():
		t.Fatal("gateway's CHILD_SA DELETE not applied")
	}
	lab.Swanctl(t, "--terminate", "--ike", "dns")
	select {
	case <-s.Done():
		if !errors.Is(s.Err(), ike.ErrPeerDelete) {
			t.Fatalf("session ended with %v", s.Err())
		}
	case <-ctx.Done():
		t.Fatal("session did not end after the gateway deleted the IKE SA")
	}
}

// TestStrongSwanFragmentation: with tiny fragment sizes on both sides,
// IKE_AUTH travels as RFC 7383 fragments each way, and so does a DELETE.
func TestStrongSwanFragmentation(t *testing.T) {
	g := gateway()
	g.CharonExtra = "  fragment_size = 200\n"
	lab := iketest.Start(t, g)
	s, c, k, err := dial(t, lab, func(c *ike.Config) { c.FragmentSize = 120 })
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	log := lab.Log()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "fragment") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if !strings.Contains(log, "reassembled fragmented IKE message") {
		t.Error("gateway reassembled no fragments from us")
	}
	if !strings.Contains(log, "into 2 fragments") && !strings.Contains(log, "into 3 fragments") {
		t.Error("gateway sent no fragments")
	}
	child := <-k.added
	if a := queryThroughTunnel(t, c, child, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("A record %v", a)
	}
}

// TestStrongSwanOwnIKERekey: we rekey the IKE SA ourselves (twice); the
// CHILD_SA keeps working, RekeyChild rekeys it over the newest IKE SA, and
// Close deletes that.
func TestStrongSwanOwnIKERekey(t *testing.T) {
	lab := iketest.Start(t, gateway())
	s, c, k, err := dial(t, lab, func(c *ike.Config) { c.IKERekey = time.Second; c.ChildRekey = -1 })
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	child := <-k.added
	for deadline := time.Now().Add(15 * time.Second); s.Info().IKERekeys < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d IKE rekeys", s.Info().IKERekeys)
		}
	}
	if n := strings.Count(lab.Log(), "rekeyed between"); n < 2 {
		t.Errorf("gateway logged %d IKE rekeys", n)
	}
	if a := queryThroughTunnel(t, c, child, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("A record %v", a)
	}
	if strings.Count(lab.Swanctl(t, "--list-sas"), "ESTABLISHED") != 1 {
		t.Errorf("gateway SAs after rekeys:\n%s", lab.Swanctl(t, "--list-sas"))
	}
	// A soft lifetime reported by the ESP layer rekeys the CHILD_SA now.
	s.RekeyChild(child.OutSPI)
	select {
	case c2 := <-k.added:
		if c2.Replaces != child.InSPI {
			t.Fatalf("new CHILD_SA replaces %08x, want %08x", c2.Replaces, child.InSPI)
		}
		if a := queryThroughTunnel(t, c, c2, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
			t.Fatalf("A record %v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RekeyChild did not rekey")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close after IKE rekeys: %v", err)
	}
}

// slowConn delivers every IKE message 100 ms late, so exchanges that both
// sides start within that window overlap: a deterministic rekey collision.
type slowConn struct {
	*iketest.Conn
	q chan []byte
}

func newSlowConn(ctx context.Context, c *iketest.Conn) *slowConn {
	s := &slowConn{Conn: c, q: make(chan []byte, 64)}
	go func() {
		for {
			b, err := c.Receive(ctx)
			if err != nil {
				return
			}
			time.AfterFunc(100*time.Millisecond, func() { s.q <- b })
		}
	}()
	return s
}

func (s *slowConn) Receive(ctx context.Context) ([]byte, error) {
	select {
	case b := <-s.q:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestStrongSwanRekeyCollision starts CHILD rekeys on both sides within the
// same 100 ms, several times: the lowest-nonce rule (RFC 7296 §2.8.1) picks
// the same survivor at both ends, which carries traffic.
func TestStrongSwanRekeyCollision(t *testing.T) {
	lab := iketest.Start(t, gateway())
	c := iketest.NewConn(lab.DialUDP(t, 4500))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := newKeyer()
	cfg := config(c, "test-psk-0123456789")
	cfg.ChildRekey = -1
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	s, err := ike.Dial(dctx, newSlowConn(ctx, c), k, cfg)
	dcancel()
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer s.Close(context.Background())
	cur := <-k.added
	for round := 0; round < 3; round++ {
		// The gateway's request reaches us 100 ms late, after ours left.
		lab.Swanctl(t, "--rekey", "--child", "internal")
		s.RekeyChild(cur.OutSPI)
		deadline := time.Now().Add(30 * time.Second)
		for {
			sas := lab.Swanctl(t, "--list-sas")
			k.mu.Lock()
			n := len(k.children)
			k.mu.Unlock()
			if strings.Count(sas, "INSTALLED") == 1 && !strings.Contains(sas, "REKEY") && n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no single CHILD_SA: ours %d, gateway:\n%s", round, n, sas)
			}
			time.Sleep(100 * time.Millisecond)
		}
		k.mu.Lock()
		for _, ch := range k.children {
			cur = ch
		}
		k.mu.Unlock()
		t.Logf("round %d: our child in %08x out %08x", round, cur.InSPI, cur.OutSPI)
		if a := queryThroughTunnel(t, c, cur, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
			t.Fatalf("A record %v", a)
		}
	}
	log := lab.Log()
	n := strings.Count(log, "detected CHILD_REKEY collision with CHILD_REKEY")
	t.Logf("%d collisions: gateway won %d, lost %d", n, strings.Count(log, "rekey collision won"), strings.Count(log, "rekey collision lost"))
	if n == 0 {
		t.Error("no rekey collision happened")
	}
}

// TestStrongSwanIKERekeyCollision starts IKE rekeys on both sides within the
// same 100 ms, several times: the lowest-nonce rule (RFC 7296 §2.8.2) picks
// the same surviving IKE SA at both ends, over which CHILD rekeys and DELETE
// still work.
func TestStrongSwanIKERekeyCollision(t *testing.T) {
	lab := iketest.Start(t, gateway())
	c := iketest.NewConn(lab.DialUDP(t, 4500))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := newKeyer()
	cfg := config(c, "test-psk-0123456789")
	cfg.ChildRekey, cfg.IKERekey = -1, -1
	dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
	s, err := ike.Dial(dctx, newSlowConn(ctx, c), k, cfg)
	dcancel()
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	<-k.added
	for round := 0; round < 3; round++ {
		lab.Swanctl(t, "--rekey", "--ike", "dns")
		s.RekeyIKE()
		deadline := time.Now().Add(20 * time.Second)
		for {
			sas := lab.Swanctl(t, "--list-sas")
			if strings.Count(sas, "ESTABLISHED") == 1 && !strings.Contains(sas, "REKEY") && s.Info().IKERekeys >= round+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: gateway SAs:\n%s", round, sas)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The surviving IKE SA works: a CHILD rekey over it, then traffic.
	before := len(k.added)
	lab.Swanctl(t, "--rekey", "--child", "internal")
	for deadline := time.Now().Add(10 * time.Second); len(k.added) == before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no CHILD rekey over the surviving IKE SA")
		}
	}
	var cur ike.ChildSA
	for len(k.added) > 0 {
		cur = <-k.added
	}
	time.Sleep(200 * time.Millisecond) // the gateway's DELETE of the old CHILD_SA switches our outbound
	if a := queryThroughTunnel(t, c, cur, s.Info().VirtualIPs[0]); a != netip.MustParseAddr("192.0.2.80") {
		t.Fatalf("A record %v", a)
	}
	log := lab.Log()
	n := strings.Count(log, "detected IKE_REKEY collision with IKE_REKEY")
	t.Logf("%d IKE collisions: gateway won %d, lost %d", n, strings.Count(log, "IKE_SA rekey collision won"), strings.Count(log, "IKE_SA rekey collision lost"))
	if n == 0 {
		t.Error("no IKE rekey collision happened")
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := s.Close(cctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// BenchmarkStrongSwanDial measures a full IKE_SA_INIT (with the
// INVALID_KE_PAYLOAD retry) + IKE_AUTH + DELETE against strongSwan.
func BenchmarkStrongSwanDial(b *testing.B) {
	lab := iketest.Start(b, gateway())
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		// A fresh socket each time: a finished session's reader may still
		// be polling the old one.
		c := iketest.NewConn(lab.DialUDP(b, 4500))
		s, err := ike.Dial(ctx, c, newKeyer(), config(c, "test-psk-0123456789"))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
