//go:build !linux

package do53

import (
	"net"
	"net/netip"
)

// pktinfo is Linux-only; elsewhere wildcard sockets reply from the address
// routing picks.
type pktinfo struct{ on bool }

const oobSize = 0

func enablePktinfo(*net.UDPConn) pktinfo                    { return pktinfo{} }
func (pktinfo) dst([]byte) (netip.Addr, uint32)             { return netip.Addr{}, 0 }
func (pktinfo) src(b []byte, _ netip.Addr, _ uint32) []byte { return b[:0] }
