package netstack

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Defaults for Config's zero values.
const (
	DefaultMTU      = 1400
	DefaultQueueLen = 1024
)

const nicID = 1

// Config configures a Stack. The zero value is usable: no address yet, MTU
// 1400, a 1024-packet queue.
type Config struct {
	// Addresses are the stack's own (inner) addresses; more can be added
	// with AddAddress, e.g. once IKE assigns a virtual IP.
	Addresses []netip.Addr
	// MTU is the link MTU in bytes; 0 means DefaultMTU. It must be at least
	// 576, and at least 1280 when an IPv6 address is used (RFC 8200 §5).
	MTU int
	// QueueLen bounds the packets waiting for Read; 0 means
	// DefaultQueueLen. Packets beyond it are dropped and counted.
	QueueLen int
}

// Stack is a gVisor network stack with one NIC whose other end is Read and
// Write. All methods are safe for concurrent use.
type Stack struct {
	s     *stack.Stack
	ep    *channel.Endpoint
	mtu   int
	drops atomic.Uint64
}

// dropCounter wraps the channel endpoint to count the packets a full queue
// refuses (gVisor drops them quietly otherwise).
type dropCounter struct {
	*channel.Endpoint
	drops *atomic.Uint64
}

func (d dropCounter) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n, err := d.Endpoint.WritePackets(pkts)
	if lost := pkts.Len() - n; lost > 0 && err == nil {
		d.drops.Add(uint64(lost))
	}
	return n, err
}

// New starts a stack.
func New(cfg Config) (*Stack, error) {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < 576 || mtu > 65535 {
		return nil, fmt.Errorf("netstack: MTU %d out of range", mtu)
	}
	q := cfg.QueueLen
	if q == 0 {
		q = DefaultQueueLen
	}
	if q < 0 {
		return nil, errors.New("netstack: negative QueueLen")
	}
	st := &Stack{mtu: mtu}
	st.s = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	// SACK is off by default in gVisor; without it a lost segment costs a
	// full window of retransmissions.
	sack := tcpip.TCPSACKEnabled(true)
	if err := st.s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		st.s.Close()
		return nil, fmt.Errorf("netstack: enabling SACK: %v", err)
	}
	st.ep = channel.New(q, uint32(mtu), "")
	if err := st.s.CreateNIC(nicID, dropCounter{st.ep, &st.drops}); err != nil {
		st.s.Close()
		return nil, fmt.Errorf("netstack: creating NIC: %v", err)
	}
	st.s.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	st.s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	for _, a := range cfg.Addresses {
		if err := st.AddAddress(a); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// AddAddress adds an inner address to the NIC.
func (st *Stack) AddAddress(a netip.Addr) error {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return fmt.Errorf("netstack: invalid address %v", a)
	}
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		if st.mtu < 1280 {
			return fmt.Errorf("netstack: IPv6 needs an MTU of at least 1280, have %d", st.mtu)
		}
		proto = ipv6.ProtocolNumber
	}
	pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
	if err := st.s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		if _, dup := err.(*tcpip.ErrDuplicateAddress); dup {
			return nil
		}
		return fmt.Errorf("netstack: adding %v: %v", a, err)
	}
	return nil
}

// MTU returns the link MTU.
func (st *Stack) MTU() int { return st.mtu }

// Drops returns how many outbound packets a full queue dropped.
func (st *Stack) Drops() uint64 { return st.drops.Load() }

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("netstack: closed")

// Read blocks until the stack emits a packet, copies it to buf[off:] and
// returns its length. See ReadBatch.
func (st *Stack) Read(ctx context.Context, buf []byte, off int) (int, error) {
	var size [1]int
	if _, err := st.ReadBatch(ctx, [][]byte{buf}, size[:], off); err != nil {
		return 0, err
	}
	return size[0], nil
}

// ReadBatch blocks until the stack emits a packet, then takes as many as
// are queued, up to len(bufs): packet i is copied to bufs[i][off:] and its
// length stored in sizes[i]. Packets longer than the room in a buffer are
// dropped and counted. It returns ctx.Err() when ctx ends, ErrClosed after
// Close.
func (st *Stack) ReadBatch(ctx context.Context, bufs [][]byte, sizes []int, off int) (int, error) {
	n := 0
	for n < len(bufs) {
		var pkt *stack.PacketBuffer
		if n == 0 {
			if pkt = st.ep.ReadContext(ctx); pkt == nil {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				return 0, ErrClosed
			}
		} else if pkt = st.ep.Read(); pkt == nil {
			break
		}
		size, c := pkt.Size(), 0
		if buf := bufs[n]; size > 0 && size <= len(buf)-off {
			for _, v := range pkt.AsSlices() {
				c += copy(buf[off+c:], v)
			}
		}
		pkt.DecRef()
		if c == 0 || c != size {
			st.drops.Add(1)
			continue
		}
		sizes[n] = size
		n++
	}
	return n, nil
}

// Write injects one IPv4 or IPv6 packet received from the peer. The stack
// copies it; buf may be reused once Write returns.
func (st *Stack) Write(pkt []byte) error {
	if len(pkt) == 0 {
		return errors.New("netstack: empty packet")
	}
	var proto tcpip.NetworkProtocolNumber
	switch pkt[0] >> 4 {
	case 4:
		proto = ipv4.ProtocolNumber
	case 6:
		proto = ipv6.ProtocolNumber
	default:
		return errors.New("netstack: not an IP packet")
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	st.ep.InjectInbound(proto, pb)
	pb.DecRef()
	return nil
}

// Close tears the stack down; open connections fail.
func (st *Stack) Close() {
	st.ep.Close()
	st.s.Close()
	st.s.Wait()
}
