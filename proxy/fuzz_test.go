package proxy

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// discardConn takes the replies readRequest writes (method selection,
// errors) and nothing else.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// FuzzReadRequest feeds arbitrary client bytes to the request parsers the
// way handle does: no panic, and an accepted CONNECT names a port.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 16, 'a', 'p', 'p', '.', 'c', 'o', 'r', 'p', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 1, 187})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{5, 2, 1, 2})
	f.Add([]byte{5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80})
	f.Add([]byte("CONNECT app.corp.example:443 HTTP/1.1\r\nHost: app.corp.example:443\r\n\r\n"))
	f.Add([]byte("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("CONNECT x:0 HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		lim := &capReader{r: bytes.NewReader(data), n: maxRequest}
		br := bufio.NewReaderSize(lim, 1024)
		var p protocol = &httpConnect{}
		if data[0] == socksVersion {
			p = &socks5{}
		}
		host, port, err := p.readRequest(br, discardConn{})
		if err != nil {
			return
		}
		if _, isHTTP := p.(*httpConnect); isHTTP && port == 0 {
			t.Errorf("CONNECT accepted with port 0 (host %q)", host)
		}
	})
}
