package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
)

// httpConnect is the HTTP CONNECT method (RFC 9110 §9.3.6); nothing else is
// forwarded.
type httpConnect struct{}

func (httpConnect) name() string { return "http" }

func (httpConnect) readRequest(br *bufio.Reader, c net.Conn) (string, uint16, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return "", 0, err
	}
	if req.Method != http.MethodConnect {
		fmt.Fprintf(c, "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return "", 0, fmt.Errorf("method %s", req.Method)
	}
	return splitPort(req.Host)
}

var httpReplies = map[string]string{
	"ok":      "200 Connection Established",
	"port":    "403 Forbidden",
	"resolve": "502 Bad Gateway",
	"dial":    "502 Bad Gateway",
}

func (httpConnect) reply(c net.Conn, reason string, _ net.Addr) error {
	status, ok := httpReplies[reason]
	if !ok {
		status = "500 Internal Server Error"
	}
	extra := ""
	if reason != "ok" {
		extra = "Content-Length: 0\r\nConnection: close\r\n"
	}
	_, err := fmt.Fprintf(c, "HTTP/1.1 %s\r\n%s\r\n", status, extra)
	return err
}
