//go:build !linux

package do53

import (
	"context"
	"net"
)

// ListenUDP opens one UDP socket on addr; SO_REUSEPORT sharding is Linux-only.
func ListenUDP(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{pc}, nil
}
