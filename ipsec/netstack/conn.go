package netstack

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

func full(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	a := ap.Addr().Unmap()
	fa := tcpip.FullAddress{NIC: nicID, Port: ap.Port()}
	if a.IsValid() && !a.IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(a.AsSlice())
	}
	if a.Is6() {
		return fa, ipv6.ProtocolNumber
	}
	return fa, ipv4.ProtocolNumber
}

// DialTCP opens a TCP connection to dst, bounded by ctx.
func (st *Stack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	fa, proto := full(dst)
	c, err := gonet.DialContextTCP(ctx, st.s, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("netstack: dialing tcp %v: %w", dst, err)
	}
	return c, nil
}

// DialUDP returns a UDP socket connected to dst.
func (st *Stack) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	fa, proto := full(dst)
	c, err := gonet.DialUDP(st.s, nil, &fa, proto)
	if err != nil {
		return nil, fmt.Errorf("netstack: dialing udp %v: %w", dst, err)
	}
	return c, nil
}

// ListenUDP returns an unconnected UDP socket bound to local (an
// unspecified address binds every inner address of its family; port 0 picks
// one).
func (st *Stack) ListenUDP(local netip.AddrPort) (net.PacketConn, error) {
	fa, proto := full(local)
	c, err := gonet.DialUDP(st.s, &fa, nil, proto)
	if err != nil {
		return nil, fmt.Errorf("netstack: listening udp %v: %w", local, err)
	}
	return c, nil
}

// ListenTCP returns a TCP listener bound to local.
func (st *Stack) ListenTCP(local netip.AddrPort) (net.Listener, error) {
	fa, proto := full(local)
	l, err := gonet.ListenTCP(st.s, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("netstack: listening tcp %v: %w", local, err)
	}
	return l, nil
}
