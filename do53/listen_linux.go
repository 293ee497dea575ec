package do53

import (
	"context"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenUDP opens n UDP sockets bound to the same addr with SO_REUSEPORT, for
// Server.Serve: the kernel spreads clients across the sockets by flow hash, so
// each socket's reader goroutine sees a share of the load. n <= 0 means
// runtime.NumCPU(). With port 0 the first socket picks the port and the others
// join it. A port another socket holds, with or without SO_REUSEPORT, is an
// error. On error every socket opened so far is closed.
func ListenUDP(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// SO_REUSEPORT would let these sockets join a group another process of
	// the same user already holds (a second Lamina, a stale one) and split
	// its queries silently. A plain bind first makes a port in use an
	// error, as it is for TCP.
	probe, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, err
	}
	probe.Close()
	pcs := make([]net.PacketConn, 0, n)
	for range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			for _, p := range pcs {
				p.Close()
			}
			return nil, err
		}
		pcs = append(pcs, pc)
		addr = pc.LocalAddr().String()
	}
	return pcs, nil
}
