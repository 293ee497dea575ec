package doq

import (
	"net"
	"net/netip"
	"testing"
)

func TestAddrPortUnmaps(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 853}, "192.0.2.1:853"},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.1").To4(), Port: 853}, "192.0.2.1:853"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 853}, "[2001:db8::1]:853"},
	} {
		if got := addrPort(tc.in); got != netip.MustParseAddrPort(tc.want) {
			t.Errorf("addrPort(%v) = %v, want %s", tc.in, got, tc.want)
		}
	}
}
