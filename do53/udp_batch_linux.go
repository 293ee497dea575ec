package do53

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/laminadns/lamina/resolver"
)

// Batched UDP I/O. Under load a socket's queue holds many queries; reading
// them with one recvmmsg and sending the fast-path answers with one sendmmsg
// saves two system calls (and two trips through the netpoller) per query.
//
// The calls are made with RawSyscall on Go's non-blocking socket, through
// the socket's RawConn so that an empty queue (or a full send buffer) still
// parks the goroutine on the netpoller. A non-blocking recvmmsg or sendmmsg
// never sleeps in the kernel, so telling the scheduler about it buys
// nothing; it costs a lot: a sendmmsg delivering 32 answers takes longer
// than sysmon's 20 µs tick, so with both Ps busy sysmon hands the P to a new
// thread and the reader then waits to get one back. Measured with dnsperf,
// that churn was a tenth of the server's CPU.
//
// Each answer goes to the sockaddr its query came from, as the kernel wrote
// it: no address is parsed, allocated or rebuilt on the fast path.

const (
	batchSize = 32
	// maxBatchQuery bounds a query read in a batch (queries are a few
	// hundred bytes); a longer datagram arrives cut short (MSG_TRUNC) and
	// is dropped as malformed.
	maxBatchQuery = udpBufSize
)

// batch is a reader's buffers and message headers: batchSize datagrams in,
// as many answers out.
type batch struct {
	in    [batchSize]unix.Mmsghdr
	out   [batchSize]unix.Mmsghdr
	iov   [2 * batchSize]unix.Iovec
	names [batchSize]unix.RawSockaddrInet6 // the clients, as recvmmsg wrote them
	peers [batchSize]peer                  // the clients of out
	rbuf  []byte                           // batchSize slots of maxBatchQuery
	wbuf  []byte                           // batchSize slots of udpBufSize
	oob   []byte                           // batchSize slots of oobSize, read
	woob  []byte                           // batchSize slots of oobSize, written

	// State of the RawConn callbacks, made once so that no closure is
	// allocated per call.
	recv, send func(fd uintptr) bool
	n          int // messages read by recv, or sent by send
	pending    []unix.Mmsghdr
	errno      syscall.Errno
}

func newBatch() *batch {
	b := &batch{
		rbuf: make([]byte, batchSize*maxBatchQuery),
		wbuf: make([]byte, batchSize*udpBufSize),
		oob:  make([]byte, batchSize*oobSize),
		woob: make([]byte, batchSize*oobSize),
	}
	for i := range b.in {
		b.iov[i].Base = &b.rbuf[i*maxBatchQuery]
		h := &b.in[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		if oobSize > 0 {
			h.Control = &b.oob[i*oobSize]
		}
		b.out[i].Hdr.Iov = &b.iov[batchSize+i]
		b.out[i].Hdr.SetIovlen(1)
	}
	b.recv = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_RECVMMSG, fd, b.in[:])
		return b.errno != unix.EAGAIN
	}
	b.send = func(fd uintptr) bool {
		b.n, b.errno = mmsg(unix.SYS_SENDMMSG, fd, b.pending)
		return b.errno != unix.EAGAIN
	}
	return b
}

// mmsg runs recvmmsg or sendmmsg on ms without the scheduler's syscall
// bookkeeping; fd is non-blocking.
func mmsg(trap, fd uintptr, ms []unix.Mmsghdr) (int, syscall.Errno) {
	for {
		n, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&ms[0])), uintptr(len(ms)), 0, 0, 0)
		switch e {
		case 0:
			return int(n), 0
		case unix.EINTR: // Go's handlers restart system calls; be sure anyway
			continue
		}
		return 0, e
	}
}

// loop is the reader loop: batched on a *net.UDPConn, one datagram at a
// time on any other net.PacketConn.
func (r *reader) loop() error {
	if r.uc == nil {
		return r.readEach()
	}
	rc, err := r.uc.SyscallConn()
	if err != nil {
		return err
	}
	s := r.s
	b := newBatch()
	failures := 0
	for {
		for i := range b.in {
			h := &b.in[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.SetControllen(oobSize)
			h.Flags = 0
			b.iov[i].SetLen(maxBatchQuery)
		}
		err := rc.Read(b.recv)
		if err == nil && b.errno != 0 {
			err = b.errno
		}
		if err != nil {
			if done, err := r.readFailed(err, &failures); done {
				return err
			}
			continue
		}
		failures = 0
		start := time.Now()
		out := 0
		for i := range b.n {
			m := &b.in[i]
			from := sockaddrAddrPort(&b.names[i])
			if !from.IsValid() || m.Hdr.Flags&unix.MSG_TRUNC != 0 {
				s.cfg.Metrics.Dropped(resolver.UDP, DropMalformed)
				continue
			}
			p := &b.peers[out]
			*p = peer{addr: from}
			raw := b.rbuf[i*maxBatchQuery : i*maxBatchQuery+int(m.Len)]
			oob := b.oob[i*oobSize : i*oobSize+int(m.Hdr.Controllen)]
			woob := b.woob[out*oobSize : (out+1)*oobSize]
			dst := b.wbuf[out*udpBufSize : out*udpBufSize : (out+1)*udpBufSize]
			resp, ok := r.handle(raw, oob, p, woob, dst, start)
			if !ok || len(resp) == 0 {
				continue
			}
			h := &b.out[out].Hdr
			h.Name, h.Namelen = m.Hdr.Name, m.Hdr.Namelen
			b.iov[batchSize+out].Base = &resp[0]
			b.iov[batchSize+out].SetLen(len(resp))
			h.Control = nil
			h.SetControllen(0)
			if len(p.oob) > 0 {
				h.Control = &p.oob[0]
				h.SetControllen(len(p.oob))
			}
			out++
		}
		if out > 0 {
			r.sendBatch(rc, b, out)
		}
	}
}

// sendBatch sends b's first n answers, skipping a datagram the kernel
// refuses.
func (r *reader) sendBatch(rc syscall.RawConn, b *batch, n int) {
	b.pending = b.out[:n]
	for len(b.pending) > 0 {
		if err := rc.Write(b.send); err != nil {
			return // the socket is closed
		}
		if b.errno != 0 {
			if !r.s.closing.Load() {
				r.s.cfg.Logger.Debug("udp write failed", "listener", r.s.cfg.Listener, "err", b.errno)
			}
			b.n = 1 // sendmmsg fails only on its first datagram
		}
		b.pending = b.pending[b.n:]
	}
	b.pending = nil
}

// sockaddrAddrPort reads the client address recvmmsg wrote; the zero
// AddrPort for a family other than IPv4 and IPv6.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			// A link-local client: the slow path's reply needs the
			// interface. Rare, so the string is allowed to allocate.
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}
