package h2

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestCork: writes go straight out until a read returns data, are held
// from then on (up to maxCorked), and leave, in order, when the next read
// starts or the connection closes.
func TestCork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := WrapListener(ln)
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	nc, err := wl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*corkConn)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	expect := func(want string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(peer, got); err != nil || string(got) != want {
			t.Fatalf("peer read %q, %v; want %q", got, err, want)
		}
	}
	held := func(want int) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.buf) != want {
			t.Fatalf("%d bytes held, want %d", len(c.buf), want)
		}
	}

	c.Write([]byte("hello")) // nothing read yet: straight out
	held(0)
	expect("hello")

	peer.Write([]byte("q1"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("a1"))
	c.Write([]byte("a2"))
	held(4)

	peer.Write([]byte("q2"))
	if _, err := io.ReadFull(c, buf); err != nil { // flushes first
		t.Fatal(err)
	}
	expect("a1a2")

	big := bytes.Repeat([]byte("x"), maxCorked+1)
	c.Write([]byte("a3"))
	c.Write(big) // over the bound: a3 and big go out now, in order
	held(0)
	expect("a3" + string(big))

	c.Write([]byte("bye"))
	held(3)
	c.Close()
	expect("bye")
	if n, _ := peer.Read(buf); n != 0 {
		t.Fatal("data after close")
	}
}
