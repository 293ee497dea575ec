// Package netstack runs gVisor's userspace TCP/IP stack over a packet
// channel: the tunnel reads the IP packets the stack wants sent (Read) and
// injects the ones it decrypted (Write), and callers get net.Conn,
// net.PacketConn and net.Listener values bound to the inner addresses.
//
// It owns the stack's configuration: IPv4 and IPv6, the link MTU (default
// 1400; TCP derives its MSS from it, so segments always fit the tunnel), SACK
// on, and a bounded outbound queue whose overflow is counted, not silent.
//
// It does not own routing policy, ESP, or name resolution: addresses are IP
// literals, and which destinations may be reached is the tunnel's decision.
// It is the only Lamina package that imports gVisor.
package netstack
