package do53

import (
	"net"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/laminadns/lamina/resolver"
)

// Batched UDP I/O. Under load a socket's queue holds many queries; reading
// them with one recvmmsg and sending the fast-path answers with one sendmmsg
// saves two system calls (and two trips through the netpoller) per query.
// ipv4.PacketConn's batch calls serve AF_INET6 sockets as well: they only
// move bytes, addresses and control messages. Off Linux they move one
// datagram per call.

const (
	batchSize = 32
	// maxBatchQuery bounds a query read in a batch (queries are a few
	// hundred bytes). Slots are a byte longer: a datagram that fills one was
	// cut short by the kernel and is dropped as malformed.
	maxBatchQuery = udpBufSize
	batchBufSize  = maxBatchQuery + 1
)

// batch is a reader's buffers: batchSize datagrams in, as many answers out.
type batch struct {
	in    []ipv4.Message
	out   []ipv4.Message
	peers []peer // the clients of out
	rbuf  []byte // batchSize slots of batchBufSize
	wbuf  []byte // batchSize slots of udpBufSize
	oob   []byte // batchSize slots of oobSize, read
	woob  []byte // batchSize slots of oobSize, written
	iov   [][]byte
}

func newBatch() *batch {
	b := &batch{
		in:    make([]ipv4.Message, batchSize),
		out:   make([]ipv4.Message, batchSize),
		peers: make([]peer, batchSize),
		rbuf:  make([]byte, batchSize*batchBufSize),
		wbuf:  make([]byte, batchSize*udpBufSize),
		oob:   make([]byte, batchSize*oobSize),
		woob:  make([]byte, batchSize*oobSize),
		iov:   make([][]byte, 2*batchSize),
	}
	for i := range b.in {
		b.iov[i] = b.rbuf[i*batchBufSize : (i+1)*batchBufSize]
		b.in[i].Buffers = b.iov[i : i+1 : i+1]
		b.in[i].OOB = b.oob[i*oobSize : (i+1)*oobSize]
		b.out[i].Buffers = b.iov[batchSize+i : batchSize+i+1 : batchSize+i+1]
	}
	return b
}

// readBatch is the reader loop of a *net.UDPConn.
func (r *reader) readBatch() error {
	s := r.s
	pc := ipv4.NewPacketConn(r.uc)
	b := newBatch()
	failures := 0
	for {
		n, err := pc.ReadBatch(b.in, 0)
		if err != nil {
			if done, err := r.readFailed(err, &failures); done {
				return err
			}
			continue
		}
		failures = 0
		start := time.Now()
		out := 0
		for i := range n {
			m := &b.in[i]
			ua, _ := m.Addr.(*net.UDPAddr)
			if ua == nil || m.N > maxBatchQuery {
				s.cfg.Metrics.Dropped(resolver.UDP, DropMalformed)
				continue
			}
			p := &b.peers[out]
			*p = peer{addr: ua.AddrPort(), naddr: ua}
			woob := b.woob[out*oobSize : (out+1)*oobSize]
			dst := b.wbuf[out*udpBufSize : out*udpBufSize : (out+1)*udpBufSize]
			resp, ok := r.handle(m.Buffers[0][:m.N], m.OOB[:m.NN], p, woob, dst, start)
			if !ok {
				continue
			}
			o := &b.out[out]
			o.Buffers[0], o.OOB, o.Addr = resp, p.oob, ua
			out++
		}
		r.writeBatch(pc, b.out[:out])
	}
}

// writeBatch sends ms, skipping a datagram the kernel refuses.
func (r *reader) writeBatch(pc *ipv4.PacketConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := pc.WriteBatch(ms, 0)
		if err != nil {
			if r.s.closing.Load() {
				return
			}
			r.s.cfg.Logger.Debug("udp write failed", "listener", r.s.cfg.Listener, "err", err)
			n = 1 // sendmmsg fails only on its first datagram
		}
		ms = ms[n:]
	}
}
