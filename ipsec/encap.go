package ipsec

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
)

var errClosed = net.ErrClosed

// recvLoop demultiplexes the outer socket (RFC 3948 §2): a single 0xFF byte
// is a NAT keepalive, four zero bytes mark IKE, anything else is ESP.
func (t *Tunnel) recvLoop() {
	defer t.wg.Done()
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, 65536) // any datagram fits: nothing is truncated
	}
	if t.batch == nil {
		bufs = bufs[:1]
	}
	msgs, sizes := newMessages(bufs), make([]int, len(bufs))
	for {
		n, err := t.readOuter(msgs, bufs, sizes)
		for i := range n {
			t.receive(bufs[i][:sizes[i]])
		}
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// A connected UDP socket reports ICMP errors (ECONNREFUSED)
			// as read errors; count them and pause briefly.
			t.c.recvErrs.Add(1)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

func (t *Tunnel) receive(p []byte) {
	switch {
	case len(p) == 1 && p[0] == 0xFF:
		t.c.kaRecv.Add(1)
	case len(p) >= 4 && binary.BigEndian.Uint32(p) == 0:
		t.c.ikeRecv.Add(1)
		msg := append([]byte(nil), p[4:]...)
		if t.ike != nil {
			t.ike.HandleIKE(msg)
			return
		}
		select {
		case t.ikeq <- msg:
		default:
			t.c.ikeDropped.Add(1)
		}
	default:
		spi, ok := esp.SPIOf(p)
		sa := (*t.in.Load())[spi]
		if !ok || sa == nil {
			t.c.unknownSPI.Add(1)
			return
		}
		inner, nh, err := sa.Open(p)
		if err != nil {
			return // counted by the SA
		}
		// Tunnel mode carries only IP (RFC 4303 §2.6); the version must
		// agree with the next header.
		if len(inner) == 0 {
			t.c.injectErrs.Add(1)
			return
		}
		if v := inner[0] >> 4; !(nh == esp.NextHeaderIPv4 && v == 4) && !(nh == esp.NextHeaderIPv6 && v == 6) {
			t.c.injectErrs.Add(1)
			return
		}
		// RFC 4301 §5.2: the inner source must match the SA's selectors.
		if src, ok := ipAddr(inner, false); !ok || !t.allowed(src) {
			t.c.policy.Add(1)
			return
		}
		if t.st.Write(inner) != nil {
			t.c.injectErrs.Add(1)
			return
		}
		t.c.packetsIn.Add(1)
	}
}

// sendLoop is the only goroutine that seals, so packets leave in the order
// the stack produced them, across outbound SA switches too. It takes the
// packets queued in the stack in batches and sends them with one system
// call where the socket allows.
func (t *Tunnel) sendLoop() {
	defer t.wg.Done()
	off := esp.MaxHeadroom
	bufs, sizes := make([][]byte, batchSize), make([]int, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, off+t.st.MTU()+esp.MaxTailroom)
	}
	msgs, pkts := newMessages(bufs), make([][]byte, 0, batchSize)
	for {
		n, err := t.st.ReadBatch(t.ctx, bufs, sizes, off)
		if err != nil {
			return
		}
		pkts = pkts[:0]
		for i := range n {
			if pkt, ok := t.seal(bufs[i], off, sizes[i]); ok {
				pkts = append(pkts, pkt)
			}
		}
		t.writeOuter(msgs, pkts)
	}
}

// seal checks one inner packet against the selectors and seals it with the
// current outbound SA.
func (t *Tunnel) seal(buf []byte, off, n int) ([]byte, bool) {
	p := buf[off : off+n]
	dst, ok := ipAddr(p, true)
	if !ok || !t.allowed(dst) {
		t.c.policy.Add(1)
		return nil, false
	}
	sa := t.out.Load()
	if sa == nil {
		t.c.noSA.Add(1)
		return nil, false
	}
	nh := byte(esp.NextHeaderIPv4)
	if p[0]>>4 == 6 {
		nh = esp.NextHeaderIPv6
	}
	pkt, err := sa.Seal(buf, off, n, nh)
	return pkt, err == nil // a failure is counted by the SA
}

// sent notes outbound traffic, which postpones the next NAT keepalive.
func (t *Tunnel) sent() { t.lastSend.Store(int64(time.Since(t.start))) }

// keepaliveLoop sends a NAT keepalive (RFC 3948 §2.3) whenever nothing was
// sent for a whole period, waking exactly when the period would end.
func (t *Tunnel) keepaliveLoop() {
	defer t.wg.Done()
	timer := time.NewTimer(t.keepalive)
	defer timer.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-timer.C:
		}
		idle := time.Since(t.start) - time.Duration(t.lastSend.Load())
		if idle >= t.keepalive {
			if _, err := t.conn.Write([]byte{0xFF}); err != nil {
				t.c.sendErr.Add(1)
			} else {
				t.c.kaSent.Add(1)
			}
			t.sent()
			idle = 0
		}
		timer.Reset(t.keepalive - idle)
	}
}

// SendIKE sends one IKE message on the tunnel's socket behind the non-ESP
// marker (RFC 3948 §2.2). It does not retain msg.
func (t *Tunnel) SendIKE(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.ctx.Err() != nil {
		return errClosed
	}
	b := make([]byte, 4+len(msg))
	copy(b[4:], msg)
	if _, err := t.conn.Write(b); err != nil {
		t.c.sendErr.Add(1)
		return err
	}
	t.c.ikeSent.Add(1)
	t.sent()
	return nil
}

// ReadIKE returns the next IKE message received when Config.IKE is nil. It
// blocks until one arrives, ctx ends, or the tunnel closes.
func (t *Tunnel) ReadIKE(ctx context.Context) ([]byte, error) {
	select {
	case m := <-t.ikeq:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.ctx.Done():
		return nil, errClosed
	}
}

// ipAddr returns an IP packet's destination (dst) or source address.
func ipAddr(p []byte, dst bool) (netip.Addr, bool) {
	if len(p) >= 20 && p[0]>>4 == 4 {
		o := 12
		if dst {
			o = 16
		}
		return netip.AddrFrom4([4]byte(p[o : o+4])), true
	}
	if len(p) >= 40 && p[0]>>4 == 6 {
		o := 8
		if dst {
			o = 24
		}
		return netip.AddrFrom16([16]byte(p[o : o+16])), true
	}
	return netip.Addr{}, false
}

// IKEConn adapts a Tunnel to a message-oriented IKE transport (the shape of
// ipsec/ike's Conn): Send is SendIKE, Receive is ReadIKE. Use it only when
// Config.IKE is nil.
type IKEConn struct{ T *Tunnel }

// Send transmits one IKE message behind the non-ESP marker.
func (c IKEConn) Send(b []byte) error { return c.T.SendIKE(context.Background(), b) }

// Receive returns the next IKE message, blocking until one arrives or ctx
// ends.
func (c IKEConn) Receive(ctx context.Context) ([]byte, error) { return c.T.ReadIKE(ctx) }
