package ipsec

import (
	"net"
	"syscall"
)

// allowFragments sets IP_PMTUDISC_DONT on the outer socket: ESP packets are
// sized by the inner MTU, and a path with a smaller MTU must fragment them
// rather than drop them with an ICMP error nobody acts on (netstack ignores
// Packet Too Big through a channel endpoint).
func allowFragments(c net.Conn) {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return
	}
	rc, err := u.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT)
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_MTU_DISCOVER, syscall.IP_PMTUDISC_DONT)
	})
}
