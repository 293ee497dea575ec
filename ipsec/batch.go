package ipsec

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchSize is how many datagrams one recvmmsg/sendmmsg moves.
const batchSize = 16

// batchConn moves several datagrams per system call (recvmmsg/sendmmsg on
// Linux, one at a time elsewhere); ipv4 and ipv6 PacketConns both have it.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// newBatchConn returns batched I/O for a real UDP socket, nil otherwise
// (say an injected test conn), where single reads and writes are used.
func newBatchConn(c net.Conn) batchConn {
	u, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	if ra, ok := u.RemoteAddr().(*net.UDPAddr); ok && ra.IP.To4() == nil {
		return ipv6.NewPacketConn(u)
	}
	return ipv4.NewPacketConn(u)
}

// readOuter fills bufs with received datagrams and their sizes.
func (t *Tunnel) readOuter(msgs []ipv4.Message, bufs [][]byte, sizes []int) (int, error) {
	if t.batch == nil {
		n, err := t.conn.Read(bufs[0])
		sizes[0] = n
		if err != nil {
			return 0, err
		}
		return 1, nil
	}
	n, err := t.batch.ReadBatch(msgs, 0)
	for i := range n {
		sizes[i] = msgs[i].N
	}
	return n, err
}

// writeOuter sends pkts in order, in as few system calls as it can.
func (t *Tunnel) writeOuter(msgs []ipv4.Message, pkts [][]byte) {
	if len(pkts) == 0 {
		return
	}
	sent := 0
	if t.batch == nil {
		for _, p := range pkts {
			if _, err := t.conn.Write(p); err != nil {
				t.c.sendErr.Add(1)
				continue
			}
			sent++
		}
	} else {
		for i, p := range pkts {
			msgs[i].Buffers[0] = p
		}
		for i := 0; i < len(pkts); {
			n, err := t.batch.WriteBatch(msgs[i:len(pkts)], 0)
			sent += n
			i += n
			if err != nil {
				t.c.sendErr.Add(1)
				i++ // skip the datagram that failed
			}
		}
	}
	t.c.packetsOut.Add(uint64(sent))
	if sent > 0 {
		t.sent()
	}
}

func newMessages(bufs [][]byte) []ipv4.Message {
	ms := make([]ipv4.Message, len(bufs))
	for i := range ms {
		ms[i].Buffers = [][]byte{bufs[i]}
	}
	return ms
}
