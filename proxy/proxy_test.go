package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"go.uber.org/goleak"
)

type dialerFunc func(ctx context.Context, network, address string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f(ctx, network, address)
}

var sysDialer = dialerFunc(func(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
})

// start runs a proxy on a loopback port and returns its address.
func start(t *testing.T, cfg Config) string {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

func backend(t *testing.T) (*httptest.Server, uint16) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the internal site")
	}))
	t.Cleanup(srv.Close)
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	return srv, ap.Port()
}

func resolveTo(a string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "app.corp.example" {
			return []netip.Addr{netip.MustParseAddr(a)}, nil
		}
		return nil, errors.New("NXDOMAIN")
	}
}

// TestCurl drives the proxy with curl, an independent client, over both
// protocols, with the name resolved by the proxy (socks5h) and by CONNECT.
func TestCurl(t *testing.T) {
	curl := testenv.Tool(t, "curl")
	_, port := backend(t)
	addr := start(t, Config{Dialer: sysDialer, Resolve: resolveTo("127.0.0.1"), Ports: []uint16{port}})
	for _, proxyURL := range []string{"socks5h://" + addr, "http://" + addr} {
		t.Run(strings.Split(proxyURL, ":")[0], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := []string{"-sS", "-k", "--max-time", "10", "--proxy", proxyURL,
				fmt.Sprintf("https://app.corp.example:%d/", port)}
			if strings.HasPrefix(proxyURL, "http:") {
				args = append(args, "--proxytunnel")
			}
			out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, out)
			}
			if string(out) != "hello from the internal site" {
				t.Fatalf("got %q", out)
			}
		})
	}
}

// socksConnect performs a SOCKS5 CONNECT to host:port and returns the reply code.
func socksConnect(t *testing.T, addr, host string, port uint16) (net.Conn, byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil || sel != [2]byte{5, 0} {
		t.Fatalf("method selection: %v %v", sel, err)
	}
	req := []byte{5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = append(req, byte(port>>8), byte(port))
	c.Write(req)
	var rep [4]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return c, 0xff
	}
	n := 6
	if rep[3] == atypIPv6 {
		n = 18
	}
	io.ReadFull(c, make([]byte, n))
	return c, rep[1]
}

func TestRefusals(t *testing.T) {
	_, port := backend(t)
	refusing := dialerFunc(func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("destination outside traffic selectors")
	})
	cases := []struct {
		name   string
		cfg    Config
		host   string
		port   uint16
		expect byte
	}{
		{"port not allowed", Config{Dialer: sysDialer, Resolve: resolveTo("127.0.0.1"), Ports: []uint16{443}}, "app.corp.example", port, 0x02},
		{"name does not resolve", Config{Dialer: sysDialer, Resolve: resolveTo("127.0.0.1"), Ports: []uint16{port}}, "nope.example", port, 0x04},
		{"no resolver", Config{Dialer: sysDialer, Ports: []uint16{port}}, "app.corp.example", port, 0x04},
		{"tunnel refuses", Config{Dialer: refusing, Resolve: resolveTo("10.200.0.80"), Ports: []uint16{port}}, "app.corp.example", port, 0x05},
		{"allowed", Config{Dialer: sysDialer, Resolve: resolveTo("127.0.0.1"), Ports: []uint16{port}}, "app.corp.example", port, 0x00},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := start(t, tc.cfg)
			c, code := socksConnect(t, addr, tc.host, tc.port)
			c.Close()
			if code != tc.expect {
				t.Fatalf("reply code %#x, want %#x", code, tc.expect)
			}
		})
	}
}

func TestACLAndGarbage(t *testing.T) {
	_, port := backend(t)
	denyAll := start(t, Config{Dialer: sysDialer, Ports: []uint16{port}, Allow: func(netip.Addr) bool { return false }})
	c, err := net.Dial("tcp", denyAll)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte{5, 1, 0})
	if n, err := c.Read(make([]byte, 2)); err == nil {
		t.Fatalf("denied client got %d bytes", n)
	}
	c.Close()

	addr := start(t, Config{Dialer: sysDialer, Ports: []uint16{port}, HandshakeTimeout: 200 * time.Millisecond})
	for _, junk := range [][]byte{{5}, {5, 255}, {5, 1, 2}, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte("\x00\x01garbage"), {}} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(junk)
		io.Copy(io.Discard, c) // the server must close (reply or timeout), never hang
		c.Close()
	}
	// Still serving after all that.
	c, code := socksConnect(t, addr, "127.0.0.1", port)
	c.Close()
	if code != 0 {
		t.Fatalf("reply %#x after garbage", code)
	}
}

func TestIdleTimeoutAndLimit(t *testing.T) {
	_, port := backend(t)
	addr := start(t, Config{Dialer: sysDialer, Ports: []uint16{port}, IdleTimeout: 200 * time.Millisecond, MaxConns: 1})
	c, code := socksConnect(t, addr, "127.0.0.1", port)
	if code != 0 {
		t.Fatalf("reply %#x", code)
	}
	// A second connection beyond MaxConns is closed at once.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection over the limit was served")
	}
	c2.Close()
	// The idle one is closed by the proxy.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("idle connection: %v", err)
	}
	c.Close()
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHugeRequestCut: a CONNECT request whose headers never end is cut off
// after a bounded number of bytes, not buffered until the handshake timeout.
func TestHugeRequestCut(t *testing.T) {
	_, port := backend(t)
	addr := start(t, Config{Dialer: sysDialer, Ports: []uint16{port}, HandshakeTimeout: time.Minute})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n", port); err != nil {
		t.Fatal(err)
	}
	line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
	for sent := 0; sent < 64<<20; sent += len(line) {
		if _, err := c.Write(line); err != nil {
			return // the proxy gave up on the request
		}
	}
	t.Fatal("the proxy took 64 MiB of request headers")
}

// TestCloseCancelsDial: Close does not wait out a resolution or dial in
// progress; it cancels it.
func TestCloseCancelsDial(t *testing.T) {
	started := make(chan struct{})
	s, err := New(Config{Dialer: sysDialer, DialTimeout: time.Hour, Ports: []uint16{443},
		Resolve: func(ctx context.Context, _ string) ([]netip.Addr, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT app.corp.example:443 HTTP/1.1\r\nHost: app.corp.example:443\r\n\r\n")
	<-started
	s.Close() // returns only once the connection's goroutine has ended
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}
