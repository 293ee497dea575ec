package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// quicDialer dials QUIC connections through a Network: one UDP socket and
// quic.Transport per upstream, opened on first use, so QUIC runs over the
// host or the tunnel alike.
//
// Resumed sessions skip a round trip of TLS but do not send 0-RTT data:
// quic-go has a data race when streams are opened on an early connection
// while the handshake completes (quic-go/quic-go#4303, open), which
// -race finds at once. Use DialEarly again once that is fixed.
type quicDialer struct {
	network Network
	ep      *endpoint
	ech     *echState
	qcfg    *quic.Config
	um      *upstreamMetrics

	mu     sync.Mutex
	pc     net.PacketConn
	tr     *quic.Transport
	closed bool
}

func newQUICDialer(o Options, ep *endpoint, ech *echState, um *upstreamMetrics) *quicDialer {
	return &quicDialer{
		network: o.Network,
		ep:      ep,
		ech:     ech,
		um:      um,
		qcfg: &quic.Config{
			HandshakeIdleTimeout: o.Timeout,
			MaxIdleTimeout:       o.IdleTimeout,
			// PING at half the negotiated idle timeout (quic-go caps the
			// period there): a server that drops idle connections silently
			// and sends no stateless reset would otherwise leave the client
			// sending queries into a dead connection until its own idle
			// timer fires, which the server's packets may have pushed back.
			KeepAlivePeriod: 15 * time.Second,
		},
	}
}

func (q *quicDialer) transport(ctx context.Context) (*quic.Transport, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, errClosedPool
	}
	if q.tr != nil {
		return q.tr, nil
	}
	pc, err := q.network.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket: %w", err)
	}
	q.pc, q.tr = pc, &quic.Transport{Conn: pc}
	return q.tr, nil
}

// dial connects to the first address that completes a handshake, with
// tlsCfg (http3 passes its own, with ALPN h3) or nil for base.
func (q *quicDialer) dial(ctx context.Context, tlsCfg *tls.Config, qcfg *quic.Config) (*quic.Conn, error) {
	tr, err := q.transport(ctx)
	if err != nil {
		return nil, err
	}
	if qcfg == nil {
		qcfg = q.qcfg
	}
	addrs, err := q.ep.resolve(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, usedECH, err := echHandshake(ctx, q.ech, tlsCfg, func(ctx context.Context, cfg *tls.Config) (*quic.Conn, error) {
			return tr.Dial(ctx, net.UDPAddrFromAddrPort(a), cfg, qcfg)
		})
		if err == nil {
			q.um.conn(usedECH)
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// dropMessage marks connections closed by dropConns (see DoH).
const dropMessage = "unresponsive"

// droppedByUs reports an error from a connection dropConns closed.
func droppedByUs(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && !ae.Remote && ae.ErrorMessage == dropMessage
}

// close closes every connection of the transport and its socket.
func (q *quicDialer) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	if q.tr == nil {
		return nil
	}
	err := q.tr.Close()
	// quic-go leaves a socket it did not create open.
	return errors.Join(err, q.pc.Close())
}
