package do53

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/internal/workpool"
	"github.com/laminadns/lamina/resolver"
)

// Server serves Do53 over UDP on one or more sockets (see ListenUDP).
//
// Each socket has one reader goroutine, which reads queries in batches (see
// readBatch). A query the Handler's ServeWire answers is handled inline on
// that goroutine with per-socket buffers, its answer sent with the batch's
// others; any other query is decoded and handled on its own goroutine,
// bounded by Config.MaxInFlight. Server is safe for concurrent use.
type Server struct {
	cfg  Config
	wire resolver.WireHandler

	ctx    context.Context // cancelled by Close: aborts handlers
	cancel context.CancelFunc
	sem    chan struct{}
	bufs   sync.Pool      // *[]byte of udpBufSize
	work   *workpool.Pool // runs slow-path queries

	mu       sync.Mutex
	pcs      map[net.PacketConn]struct{}
	closing  atomic.Bool
	readers  sync.WaitGroup
	inflight sync.WaitGroup
}

// udpBufSize holds any response Reply may produce over UDP (MaxSize caps it
// at resolver.DefaultUDPSize) with room for a larger ServeWire answer.
const udpBufSize = 4096

// NewServer checks cfg and returns a UDP server; cfg is copied.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.validate(DefaultUDPInFlight); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, wire: cfg.wireHandler(), sem: make(chan struct{}, cfg.MaxInFlight), work: workpool.New(0), pcs: map[net.PacketConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.bufs.New = func() any { b := make([]byte, udpBufSize); return &b }
	return s, nil
}

// Serve answers queries arriving on pcs until Shutdown or Close, and then
// returns ErrServerClosed. If a socket fails for good, Serve closes the
// Server and returns that error. The Server owns pcs and closes them.
func (s *Server) Serve(pcs ...net.PacketConn) error {
	if len(pcs) == 0 {
		return errors.New("do53: Serve needs a socket")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		for _, pc := range pcs {
			pc.Close()
		}
		return ErrServerClosed
	}
	for _, pc := range pcs {
		s.pcs[pc] = struct{}{}
	}
	s.readers.Add(len(pcs))
	s.mu.Unlock()
	s.cfg.Logger.Info("serving", "listener", s.cfg.Listener, "transport", "udp", "addr", pcs[0].LocalAddr().String(), "sockets", len(pcs))

	errc := make(chan error, len(pcs))
	for _, pc := range pcs {
		go func() {
			defer s.readers.Done()
			errc <- s.read(pc)
		}()
	}
	var first error
	for range pcs {
		if err := <-errc; err != nil && first == nil {
			// A socket that keeps failing takes the server down, so that
			// the caller notices rather than serve at reduced capacity.
			first = err
			s.Close()
		}
	}
	if first != nil {
		return first
	}
	return ErrServerClosed
}

// peer is where a reply goes and, on wildcard sockets, where it comes from.
type peer struct {
	addr  netip.AddrPort // the client as the socket sees it
	naddr net.Addr       // the same, for sockets other than *net.UDPConn
	oob   []byte         // PKTINFO selecting the reply's source address, or empty
}

// reader is one socket's state, owned by its reader goroutine.
type reader struct {
	s     *Server
	pc    net.PacketConn
	uc    *net.UDPConn // pc, when it is one
	pk    pktinfo
	local netip.AddrPort
	q     resolver.Query // reused for every fast-path query
}

func (s *Server) newReader(pc net.PacketConn) *reader {
	r := &reader{s: s, pc: pc, local: addrPort(pc.LocalAddr())}
	r.uc, _ = pc.(*net.UDPConn)
	if r.uc != nil {
		r.pk = enablePktinfo(r.uc)
	}
	r.q = resolver.Query{Local: r.local, Transport: resolver.UDP, Listener: s.cfg.Listener}
	return r
}

// read runs a socket's reader loop (see loop).
func (s *Server) read(pc net.PacketConn) error {
	return s.newReader(pc).loop()
}

// readEach reads and answers one datagram at a time.
func (r *reader) readEach() error {
	s, pc := r.s, r.pc
	rbuf := make([]byte, 65535)
	wbuf := make([]byte, 0, udpBufSize)
	failures := 0
	for {
		var p peer
		n, addr, err := pc.ReadFrom(rbuf)
		if err != nil {
			if done, err := r.readFailed(err, &failures); done {
				return err
			}
			continue
		}
		failures = 0
		p.naddr, p.addr = addr, addrPort(addr)
		if resp, ok := r.handle(rbuf[:n], nil, &p, nil, wbuf[:0], time.Now()); ok {
			s.write(pc, r.uc, resp, &p)
		}
	}
}

// readFailed says whether a read error ends the reader loop, and with which
// error: nil when the socket is closing, err when it keeps failing. A
// transient error (ENOBUFS, an ICMP error surfaced by the kernel) costs a
// brief pause.
func (r *reader) readFailed(err error, failures *int) (done bool, _ error) {
	if r.s.closing.Load() || errors.Is(err, net.ErrClosed) {
		return true, nil
	}
	if *failures++; *failures > 100 {
		return true, err
	}
	r.s.cfg.Logger.Warn("udp read failed", "listener", r.s.cfg.Listener, "err", err)
	time.Sleep(time.Duration(*failures) * time.Millisecond)
	return false, nil
}

// handle runs one datagram raw from p, whose control messages are oob:
// a fast-path answer, appended to dst, is returned for the caller to send;
// anything else is dropped or handed to slow. woob is where p.oob, the
// reply's PKTINFO, is built; it must outlive the reply's write.
func (r *reader) handle(raw, oob []byte, p *peer, woob, dst []byte, start time.Time) ([]byte, bool) {
	s := r.s
	// Never answer a response: any reply to it can be used to reflect and
	// amplify traffic towards a spoofed source.
	if len(raw) < headerLen || raw[2]&0x80 != 0 {
		s.cfg.Metrics.Dropped(resolver.UDP, DropMalformed)
		return nil, false
	}
	q := &r.q
	if r.pk.on {
		to, ifindex := r.pk.dst(oob)
		q.Local = r.local
		if to.IsValid() {
			q.Local = netip.AddrPortFrom(to.Unmap(), r.local.Port())
		}
		p.oob = r.pk.src(woob, to, ifindex)
	}
	q.Client = unmap(p.addr)
	if s.wire != nil {
		if resp, ok := s.cfg.tryWire(s.wire, q, raw, dst, 0, start); ok {
			return resp, true
		}
	}
	s.slow(r.pc, r.uc, raw, *p, q.Client, q.Local, start)
	return nil, false
}

// slow hands a query to a goroutine, or drops it when MaxInFlight is reached.
func (s *Server) slow(pc net.PacketConn, uc *net.UDPConn, raw []byte, p peer, client, local netip.AddrPort, start time.Time) {
	select {
	case s.sem <- struct{}{}:
	default:
		s.cfg.Metrics.Dropped(resolver.UDP, DropOverload)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	pkt := append((*bp)[:0], raw...)
	if len(p.oob) > 0 {
		p.oob = append([]byte(nil), p.oob...) // the socket's copy is reused
	}
	s.inflight.Add(1)
	s.work.Go(func() {
		defer func() {
			if cap(pkt) <= udpBufSize { // a rare jumbo query is not kept
				*bp = pkt[:0]
				s.bufs.Put(bp)
			}
			<-s.sem
			s.inflight.Done()
		}()
		q := &resolver.Query{Client: client, Local: local, Transport: resolver.UDP, Listener: s.cfg.Listener}
		// The query is decoded before the answer is packed over it.
		if out, err := s.cfg.answer(s.ctx, q, pkt, pkt[:0], 0, start); err == nil {
			s.write(pc, uc, out, &p)
		}
	})
}

func (s *Server) write(pc net.PacketConn, uc *net.UDPConn, b []byte, p *peer) {
	var err error
	switch {
	case uc != nil && len(p.oob) > 0:
		_, _, err = uc.WriteMsgUDPAddrPort(b, p.oob, p.addr)
	case uc != nil:
		_, err = uc.WriteToUDPAddrPort(b, p.addr)
	default:
		_, err = pc.WriteTo(b, p.naddr)
	}
	if err != nil && !s.closing.Load() {
		s.cfg.Logger.Debug("udp write failed", "listener", s.cfg.Listener, "err", err)
	}
}

// Shutdown stops reading, waits until every query already read is answered,
// then closes the sockets. If ctx ends first, in-flight handlers are
// cancelled, the sockets closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for pc := range s.pcs {
		pc.SetReadDeadline(time.Now()) // wakes the reader, which sees closing
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.readers.Wait()
		s.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.Close()
	return err
}

// Close closes the sockets at once and cancels in-flight handlers, whose
// answers are lost. It is idempotent and always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing.Store(true)
	s.cancel()
	for pc := range s.pcs {
		pc.Close()
		delete(s.pcs, pc)
	}
	s.mu.Unlock()
	s.work.Close()
	return nil
}

// addrPort converts a net.Addr from a socket to a netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// unmap turns an IPv4-mapped IPv6 client address into IPv4, so that policy
// sees one form of each address.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
