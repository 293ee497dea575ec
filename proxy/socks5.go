package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// RFC 1928 constants.
const (
	socksVersion    = 5
	socksNoAuth     = 0
	socksNoMethods  = 0xff
	socksCmdConnect = 1
	atypIPv4        = 1
	atypDomain      = 3
	atypIPv6        = 4
)

// RFC 1928 §6 reply codes.
var socksReplies = map[string]byte{
	"ok":      0x00,
	"dial":    0x05, // connection refused (or unreachable: the dial error says which in logs)
	"resolve": 0x04, // host unreachable
	"port":    0x02, // connection not allowed by ruleset
	"command": 0x07, // command not supported
	"atyp":    0x08, // address type not supported
}

type socks5 struct{}

func (socks5) name() string { return "socks5" }

func (p *socks5) readRequest(br *bufio.Reader, c net.Conn) (string, uint16, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return "", 0, err
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return "", 0, err
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == socksNoAuth
	}
	if !ok {
		c.Write([]byte{socksVersion, socksNoMethods})
		return "", 0, errors.New("client offers no acceptable auth method")
	}
	if _, err := c.Write([]byte{socksVersion, socksNoAuth}); err != nil {
		return "", 0, err
	}
	var req [4]byte // VER CMD RSV ATYP
	if _, err := io.ReadFull(br, req[:]); err != nil {
		return "", 0, err
	}
	if req[0] != socksVersion {
		return "", 0, fmt.Errorf("version %d", req[0])
	}
	var host string
	switch req[3] {
	case atypIPv4, atypIPv6:
		n := 4
		if req[3] == atypIPv6 {
			n = 16
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", 0, err
		}
		a, _ := netip.AddrFromSlice(b)
		host = a.String()
	case atypDomain:
		l, err := br.ReadByte()
		if err != nil {
			return "", 0, err
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", 0, err
		}
		host = string(b)
	default:
		p.reply(c, "atyp", nil)
		return "", 0, fmt.Errorf("address type %d", req[3])
	}
	var pb [2]byte
	if _, err := io.ReadFull(br, pb[:]); err != nil {
		return "", 0, err
	}
	if req[1] != socksCmdConnect {
		p.reply(c, "command", nil)
		return "", 0, fmt.Errorf("command %d not supported", req[1])
	}
	return host, binary.BigEndian.Uint16(pb[:]), nil
}

func (socks5) reply(c net.Conn, reason string, bound net.Addr) error {
	code, ok := socksReplies[reason]
	if !ok {
		code = 0x01 // general failure
	}
	b := []byte{socksVersion, code, 0, atypIPv4, 0, 0, 0, 0, 0, 0}
	if ap, err := netip.ParseAddrPort(fmt.Sprint(bound)); err == nil && bound != nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			b = append(b[:4], a.AsSlice()...)
		} else {
			b = append(append(b[:3], atypIPv6), a.AsSlice()...)
		}
		b = binary.BigEndian.AppendUint16(b, ap.Port())
	}
	_, err := c.Write(b)
	return err
}
