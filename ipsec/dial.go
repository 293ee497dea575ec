package ipsec

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// DialContext connects to address, an IP literal with port ("10.0.0.53:53",
// "[fd00::53]:853"), through the tunnel. network is tcp, tcp4, tcp6, udp,
// udp4 or udp6. Destinations outside the remote traffic selectors fail with
// ErrOutsideTS. Until an outbound SA exists the dial waits (bounded by
// ctx), so the first SYN never races the SA.
func (t *Tunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := t.target(network, address, true)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if err := t.waitUp(ctx); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	switch network[:3] {
	case "tcp":
		return t.st.DialTCP(ctx, ap)
	default:
		return t.st.DialUDP(ap)
	}
}

// ListenPacket opens a UDP socket on the inner stack. address is empty,
// ":port" or "ip:port"; an empty host binds both families for "udp", one
// for "udp4" and "udp6". WriteTo a destination outside the traffic
// selectors fails with ErrOutsideTS.
func (t *Tunnel) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	ap, err := t.local(network, address, "udp")
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	pc, err := t.st.ListenUDP(ap)
	if err != nil {
		return nil, err
	}
	return &tsPacketConn{PacketConn: pc, t: t}, nil
}

// Listen opens a TCP listener on the inner stack (for a gateway-side tunnel
// or tests); address is as for ListenPacket, but an empty host binds IPv4
// unless network is tcp6.
func (t *Tunnel) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	ap, err := t.local(network, address, "tcp")
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return t.st.ListenTCP(ap)
}

func (t *Tunnel) target(network, address string, checkTS bool) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return ap, fmt.Errorf("ipsec: address %q is not an IP literal with port", address)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if err := familyOK(network, ap.Addr()); err != nil {
		return ap, err
	}
	if checkTS && !t.allowed(ap.Addr()) {
		return ap, ErrOutsideTS
	}
	return ap, nil
}

func familyOK(network string, a netip.Addr) error {
	switch network {
	case "tcp", "udp":
	case "tcp4", "udp4":
		if !a.Is4() {
			return fmt.Errorf("ipsec: %v is not an IPv4 address", a)
		}
	case "tcp6", "udp6":
		if !a.Is6() {
			return fmt.Errorf("ipsec: %v is not an IPv6 address", a)
		}
	default:
		return net.UnknownNetworkError(network)
	}
	return nil
}

func (t *Tunnel) local(network, address, proto string) (netip.AddrPort, error) {
	if len(network) < 3 || network[:3] != proto {
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	host, port, err := net.SplitHostPort(address)
	if address == "" {
		host, port, err = "", "0", nil
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		// A plain "udp" socket binds "::", which gVisor makes dual-stack,
		// so one socket reaches IPv4 and IPv6 servers.
		host = "0.0.0.0"
		if network == proto+"6" || network == "udp" {
			host = "::"
		}
	}
	return t.target(network, net.JoinHostPort(host, port), false)
}

// tsPacketConn refuses to send outside the traffic selectors.
type tsPacketConn struct {
	net.PacketConn
	t *Tunnel
}

func (c *tsPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		if a, ok := netip.AddrFromSlice(ua.IP); ok && !c.t.allowed(a) {
			return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: ErrOutsideTS}
		}
	}
	return c.PacketConn.WriteTo(b, addr)
}
