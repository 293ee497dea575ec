package do53

import (
	"encoding/binary"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A UDP socket bound to a wildcard address (0.0.0.0, ::) receives queries for
// every local address, but a plain reply leaves from whatever source address
// the routing table picks, which clients drop: ask for 127.0.0.2 and get an
// answer from 127.0.0.1. With IP_PKTINFO / IPV6_RECVPKTINFO the kernel tells
// us each query's destination, and the reply names it as its source.

// pktinfo is the per-socket state of that scheme; the zero value (disabled)
// fits sockets bound to one address.
type pktinfo struct {
	on bool
	v6 bool // AF_INET6 socket (Go's wildcard sockets are dual-stack)
}

// oobSize holds one PKTINFO control message of either family.
const oobSize = 64

// enablePktinfo turns on destination reporting when uc is bound to a wildcard
// address.
func enablePktinfo(uc *net.UDPConn) (p pktinfo) {
	la, _ := uc.LocalAddr().(*net.UDPAddr)
	if la == nil || !la.IP.IsUnspecified() {
		return p
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return p
	}
	rc.Control(func(fd uintptr) {
		dom, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return
		}
		p.v6 = dom == unix.AF_INET6
		if p.v6 {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		p.on = err == nil
	})
	return p
}

// dst finds the query's destination address and interface in oob.
func (p pktinfo) dst(oob []byte) (addr netip.Addr, ifindex uint32) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return addr, 0
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { ifindex; spec_dst; addr }: addr is the header's.
			return netip.AddrFrom4([4]byte(data[8:12])), binary.NativeEndian.Uint32(data)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			return netip.AddrFrom16([16]byte(data[:16])), binary.NativeEndian.Uint32(data[16:])
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return addr, 0
}

// src appends to b the control message that sends a reply from addr. The
// interface is left to routing for IPv4 and kept for IPv6, where link-local
// sources need it.
func (p pktinfo) src(b []byte, addr netip.Addr, ifindex uint32) []byte {
	if !addr.IsValid() {
		return b[:0]
	}
	n := unix.SizeofInet4Pktinfo
	if p.v6 {
		n = unix.SizeofInet6Pktinfo
	}
	b = b[:unix.CmsgSpace(n)]
	clear(b)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.SetLen(unix.CmsgLen(n))
	data := b[unix.SizeofCmsghdr:]
	if p.v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		a := addr.As16() // an IPv4 client of a dual-stack socket: v4-mapped
		copy(data, a[:])
		binary.NativeEndian.PutUint32(data[16:], ifindex)
	} else {
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		a := addr.Unmap().As4()
		copy(data[4:8], a[:]) // spec_dst: the source to use
	}
	return b
}
