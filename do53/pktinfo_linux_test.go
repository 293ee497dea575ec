package do53

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
)

// inNetns runs f on a thread moved into a fresh network namespace with only
// loopback up, so that wildcard sockets expose nothing outside the test.
// Sockets f creates stay in that namespace whichever thread uses them later.
func inNetns(t *testing.T, f func() error) {
	testenv.Root(t)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, taking the
		// namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err == nil {
			err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
		}
		if err == nil {
			ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
			err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
		}
		if err != nil {
			errc <- fmt.Errorf("bringing lo up: %w", err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestUDPWildcardRepliesFromQueriedAddress: on a socket bound to a wildcard
// address, a query sent to 127.0.0.2 is answered from 127.0.0.2 (a connected
// client drops anything else) and the Handler sees 127.0.0.2 as Local.
func TestUDPWildcardRepliesFromQueriedAddress(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "0.0.0.0:0"}, // AF_INET: IP_PKTINFO
		{"udp", "[::]:0"},     // dual-stack AF_INET6: IPV6_PKTINFO, v4-mapped
	} {
		t.Run(tc.network, func(t *testing.T) {
			var mu sync.Mutex
			var locals []netip.Addr
			static := staticWire(pack(t, answerAMsg("wire.example.")))
			h := &wireFake{
				HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
					mu.Lock()
					locals = append(locals, q.Local.Addr())
					mu.Unlock()
					return answerA(ctx, q)
				},
				onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
					if raw[13] != 'w' { // "wire.example."
						return nil, false
					}
					mu.Lock()
					locals = append(locals, q.Local.Addr())
					mu.Unlock()
					return static(q, raw, dst)
				},
			}
			inNetns(t, func() error {
				pc, err := net.ListenPacket(tc.network, tc.addr)
				if err != nil {
					return err
				}
				s, err := NewServer(Config{Handler: h})
				if err != nil {
					return err
				}
				done := make(chan error, 1)
				go func() { done <- s.Serve(pc) }()
				defer func() { s.Shutdown(context.Background()); <-done }()
				port := pc.LocalAddr().(*net.UDPAddr).Port
				for _, dst := range []string{"127.0.0.2", "127.0.0.1", "127.0.0.2"} {
					for _, name := range []string{"slow.example.", "wire.example."} {
						c, err := net.Dial("udp", net.JoinHostPort(dst, fmt.Sprint(port)))
						if err != nil {
							return err
						}
						q := query(name, dns.TypeA)
						c.Write(pack(t, q))
						c.SetReadDeadline(time.Now().Add(5 * time.Second))
						buf := make([]byte, 512)
						n, err := c.Read(buf)
						c.Close()
						r := new(dns.Msg)
						if err != nil || r.Unpack(buf[:n]) != nil || r.Id != q.Id {
							return fmt.Errorf("%s via %s: no answer from the queried address: %v", name, dst, err)
						}
					}
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			want := "[127.0.0.2 127.0.0.2 127.0.0.1 127.0.0.1 127.0.0.2 127.0.0.2]"
			if fmt.Sprint(locals) != want {
				t.Fatalf("Local addresses %v, want %s", locals, want)
			}
		})
	}
}
