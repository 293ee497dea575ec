package do53

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/laminadns/lamina/resolver"
)

// TestUDPIPv6Client: a query from [::1] is answered on both paths, and the
// Handler sees the client's address and port as the client's socket has
// them.
func TestUDPIPv6Client(t *testing.T) {
	var mu sync.Mutex
	var clients []netip.AddrPort
	seen := func(q *resolver.Query) {
		mu.Lock()
		clients = append(clients, q.Client)
		mu.Unlock()
	}
	static := staticWire(pack(t, answerAMsg("wire.example.")))
	h := &wireFake{
		HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
			seen(q)
			return answerA(ctx, q)
		},
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if raw[13] != 'w' { // "wire.example."
				return nil, false
			}
			seen(q)
			return static(q, raw, dst)
		},
	}
	s, err := NewServer(Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	pcs, err := ListenUDP(context.Background(), "[::1]:0", 1)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pcs...) }()
	defer func() { s.Shutdown(context.Background()); <-done }()
	c, err := net.Dial("udp", pcs[0].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := c.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, name := range []string{"slow.example.", "wire.example."} {
		q := query(name, dns.TypeA)
		c.Write(pack(t, q))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		r := new(dns.Msg)
		if err != nil || r.Unpack(buf[:n]) != nil {
			t.Fatalf("%s: no answer: %v", name, err)
		}
		if r.Id != q.Id || len(r.Answer) != 1 {
			t.Fatalf("%s: got %v", name, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(clients) != 2 || clients[0] != me || clients[1] != me {
		t.Fatalf("Handler saw clients %v, want %v twice", clients, me)
	}
}

// TestSockaddrAddrPort covers what recvmmsg can write: IPv4, IPv6 with and
// without a scope, and a family that is neither.
func TestSockaddrAddrPort(t *testing.T) {
	port := func(p uint16) uint16 { // network byte order, as the kernel writes it
		b := [2]byte{byte(p >> 8), byte(p)}
		return *(*uint16)(unsafe.Pointer(&b))
	}
	var v4 unix.RawSockaddrInet6
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&v4))
	sa4.Family, sa4.Port, sa4.Addr = unix.AF_INET, port(5353), [4]byte{192, 0, 2, 7}
	v6 := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port(53), Addr: netip.MustParseAddr("2001:db8::1").As16()}
	ll := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port(1), Addr: netip.MustParseAddr("fe80::1").As16(), Scope_id: 3}
	for _, tc := range []struct {
		sa   unix.RawSockaddrInet6
		want string
	}{
		{v4, "192.0.2.7:5353"},
		{v6, "[2001:db8::1]:53"},
		{ll, "[fe80::1%3]:1"},
		{unix.RawSockaddrInet6{Family: unix.AF_UNIX}, "invalid AddrPort"},
	} {
		if got := sockaddrAddrPort(&tc.sa).String(); got != tc.want {
			t.Errorf("sockaddrAddrPort(%+v) = %s, want %s", tc.sa, got, tc.want)
		}
	}
}
