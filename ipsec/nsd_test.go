package ipsec

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
	"github.com/laminadns/lamina/ipsec/internal/dnstest"
)

// forwardToNSD makes the gateway-side tunnel serve DNS on 10.200.0.53:53
// and [fd00:200::53]:53 by copying UDP datagrams and TCP streams between
// its netstack and NSD on the host's loopback.
func forwardToNSD(t testing.TB, server *Tunnel, nsd netip.AddrPort) {
	t.Helper()
	forwardAddr(t, server, nsd, "10.200.0.53:53")
	forwardAddr(t, server, nsd, "[fd00:200::53]:53")
}

func forwardAddr(t testing.TB, server *Tunnel, nsd netip.AddrPort, listen string) {
	ctx := context.Background()
	pc, err := server.ListenPacket(ctx, "udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	l, err := server.Listen(ctx, "tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); l.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r, err := dnstest.ExchangeUDP(nsd.String(), q, 5*time.Second); err == nil {
					pc.WriteTo(r, from)
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", nsd.String())
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, up)
			}()
		}
	}()
}

func checkAnswer(t testing.TB, raw []byte, id uint16, i int) error {
	a, err := dnstest.Parse(raw)
	if err != nil {
		return err
	}
	if a.ID != id || a.Rcode != 0 || len(a.Addrs) != 1 || a.Addrs[0] != dnstest.AddrOf(i) {
		return fmt.Errorf("q%d: answer %+v", i, a)
	}
	return nil
}

func TestDNSThroughTunnelToNSD(t *testing.T) {
	nsd := dnstest.StartNSD(t)
	client, server := tunnelPair(t, true)
	forwardToNSD(t, server, nsd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, server := range []string{"10.200.0.53:53", "[fd00:200::53]:53"} {
		udp, err := client.DialContext(ctx, "udp", server)
		if err != nil {
			t.Fatal(err)
		}
		defer udp.Close()
		for i := range 50 {
			q := dnstest.Query(uint16(i), fmt.Sprintf("q%d.%s", i, dnstest.Zone), dnstest.TypeA)
			r, err := dnstest.Exchange(udp, q, 5*time.Second)
			if err != nil {
				t.Fatalf("UDP %s q%d: %v", server, i, err)
			}
			if err := checkAnswer(t, r, uint16(i), i); err != nil {
				t.Fatal(err)
			}
		}
		tcp, err := client.DialContext(ctx, "tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		for i := 500; i < 550; i++ {
			q := dnstest.Query(uint16(i), fmt.Sprintf("q%d.%s", i, dnstest.Zone), dnstest.TypeA)
			r, err := dnstest.ExchangeStream(tcp, q, 5*time.Second)
			if err != nil {
				t.Fatalf("TCP %s q%d: %v", server, i, err)
			}
			if err := checkAnswer(t, r, uint16(i), i); err != nil {
				t.Fatal(err)
			}
		}
	}
	cs, ss := client.Stats(), server.Stats()
	for _, s := range []Stats{cs, ss} {
		if s.In.AuthFailures+s.In.ReplayDrops+s.UnknownSPI+s.PolicyDrops+s.QueueDrops != 0 {
			t.Fatalf("drops: %+v", s)
		}
	}
}

// rekey moves both tunnels to a fresh SA pair the way an IKE CHILD_SA rekey
// does (RFC 7296 §2.8, strongSwan's order): the responder adds its new
// inbound SA, the initiator installs both and switches, the responder
// switches when the DELETE arrives, and old inbound SAs drain for a grace
// period.
func rekey(t testing.TB, client, server *Tunnel, gen uint32) {
	c2s := StaticSA{SPI: 0x2000 + 2*gen, Suite: "chacha20poly1305", Key: fmt.Sprintf("%072x", gen+1)}
	s2c := StaticSA{SPI: 0x2001 + 2*gen, Suite: "aes256gcm16", Key: fmt.Sprintf("%072x", gen+7)}
	oldC, _ := client.inboundSPIs()
	oldS, _ := server.inboundSPIs()
	must := func(err error) {
		if err != nil {
			t.Error(err)
		}
	}
	must(server.AddInbound(mustESP(t, c2s, esp.Inbound)))
	must(client.InstallChildSA(mustESP(t, s2c, esp.Inbound), mustESP(t, c2s, esp.Outbound)))
	must(server.SetOutbound(mustESP(t, s2c, esp.Outbound)))
	for _, spi := range oldC {
		client.RemoveInbound(spi, 500*time.Millisecond)
	}
	for _, spi := range oldS {
		server.RemoveInbound(spi, 500*time.Millisecond)
	}
}

func (t *Tunnel) inboundSPIs() ([]uint32, int) {
	var s []uint32
	for spi := range *t.in.Load() {
		s = append(s, spi)
	}
	return s, len(s)
}

// TestRekeyUnderLoadLosesNothing keeps 8 clients querying NSD over UDP
// (no retries; one over IPv6) and TCP while the SAs are switched 6 times.
func TestRekeyUnderLoadLosesNothing(t *testing.T) {
	nsd := dnstest.StartNSD(t)
	client, server := tunnelPair(t, true)
	forwardToNSD(t, server, nsd)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var answered atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			network, addr := "udp", "10.200.0.53:53"
			switch w {
			case 6:
				addr = "[fd00:200::53]:53"
			case 7:
				network = "tcp"
			}
			c, err := client.DialContext(ctx, network, addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w*131 + n) % dnstest.Names
				id := uint16(w<<12 | n&0xfff)
				q := dnstest.Query(id, fmt.Sprintf("q%d.%s", i, dnstest.Zone), dnstest.TypeA)
				var r []byte
				if network == "tcp" {
					r, err = dnstest.ExchangeStream(c, q, 10*time.Second)
				} else {
					r, err = dnstest.Exchange(c, q, 10*time.Second)
				}
				if err == nil {
					err = checkAnswer(t, r, id, i)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d query %d lost: %w", w, n, err)
					return
				}
				answered.Add(1)
			}
		}()
	}
	// Rekey each time another batch of queries went through.
	for gen := range uint32(6) {
		for target := answered.Load() + 200; answered.Load() < target; {
			select {
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(time.Millisecond):
			}
		}
		rekey(t, client, server, gen)
	}
	for target := answered.Load() + 200; answered.Load() < target; {
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(time.Millisecond):
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	// Let the grace timers retire the old SAs.
	for i := 0; i < 200 && (len(client.Stats().SAs) > 2 || len(server.Stats().SAs) > 2); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	cs, ss := client.Stats(), server.Stats()
	t.Logf("%d queries answered; client %d SAs live, switches %d", answered.Load(), len(cs.SAs), cs.Switches)
	for _, s := range []Stats{cs, ss} {
		if s.Switches != 6 || len(s.SAs) != 2 || s.OutboundSPI < 0x2000 {
			t.Fatalf("after rekeys: %+v", s)
		}
		if s.In.AuthFailures+s.In.ReplayDrops+s.UnknownSPI+s.PolicyDrops+s.QueueDrops+s.NoSADrops != 0 {
			t.Fatalf("drops: %+v", s)
		}
		if s.Out.Packets == 0 || s.In.Packets == 0 {
			t.Fatalf("no traffic counted: %+v", s)
		}
	}
}
