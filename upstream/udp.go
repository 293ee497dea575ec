package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// UDP is a plain DNS server over UDP (RFC 1035 §4.2.1), retried over TCP when
// the answer is truncated (RFC 7766 §5).
//
// Each try uses a connected socket, so the kernel picks a random source port
// and filters datagrams from other addresses, and a fresh crypto-random ID
// (RFC 5452 §4, §9.2). A socket serves one query at a time and at most
// Options.UDPSocketUses queries (8) within 5 s before a new port is drawn; a
// try that fails discards its socket. Datagrams that are not the answer
// (another ID, a different question, garbage) are dropped and counted, and
// the try keeps waiting until its deadline: an off-path attacker cannot end
// an exchange by sending junk.
type UDP struct {
	ep      *endpoint
	network Network
	socks   *udpSockets
	timeout time.Duration
	tries   int
	tcp     *TCP // for TC answers; dials only when needed
	m       *upstreamMetrics
	log     *slog.Logger
	url     string
	closed  atomic.Bool
}

var _ Upstream = (*UDP)(nil)

// NewUDP returns the UDP upstream at addr. It opens nothing until the first
// Exchange.
func NewUDP(addr netip.AddrPort, opts Options) *UDP {
	return newUDP(fixedEndpoint(addr), opts)
}

func newUDP(ep *endpoint, opts Options) *UDP {
	opts = opts.withDefaults()
	url := "udp://" + ep.hostPort()
	um := opts.Metrics.forUpstream(url)
	return &UDP{
		ep:      ep,
		network: opts.Network,
		socks:   newUDPSockets(ep, opts.Network, opts.UDPSocketUses),
		timeout: opts.Timeout,
		tries:   opts.Tries,
		tcp:     newTCP(ep, opts, um, "tcp://"+ep.hostPort()),
		m:       um,
		log:     opts.Logger.With("upstream", url),
		url:     url,
	}
}

// String returns the upstream's URL.
func (u *UDP) String() string { return u.url }

// Close makes later exchanges fail with net.ErrClosed and closes the TCP
// connection kept for truncated answers. Exchanges in flight finish on their
// own sockets.
func (u *UDP) Close() error {
	u.closed.Store(true)
	u.socks.close()
	return u.tcp.Close()
}

// Exchange sends req and returns the matching answer; see [Upstream].
func (u *UDP) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := u.exchange(ctx, req)
	u.m.exchange(start, resp, err)
	return resp, err
}

func (u *UDP) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if u.closed.Load() {
		return nil, closedError(u)
	}
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	end, _ := ctx.Deadline()
	perTry := time.Until(end) / time.Duration(u.tries) // of the budget left, ctx's may be shorter

	var lastErr error
	for try := range u.tries {
		deadline := time.Now().Add(perTry)
		if try == u.tries-1 || deadline.After(end) {
			deadline = end
		}
		resp, err := u.try(ctx, req, deadline)
		if err == nil {
			if resp.Truncated {
				full, err := u.tcp.exchange(ctx, req)
				if err != nil {
					// TCP blocked or down: the truncated answer is still an
					// answer, and its TC bit tells the client what happened.
					u.log.Debug("TCP retry of a truncated answer failed", "err", err)
					return resp, nil
				}
				return full, nil
			}
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exchanging with %s: %w", u, ctxError(ctx))
		}
		if u.closed.Load() {
			return nil, closedError(u)
		}
		lastErr = err
		if !isTimeout(err) {
			break // refused, unreachable: another try would fail the same way
		}
	}
	return nil, fmt.Errorf("exchanging with %s: %w", u, lastErr)
}

// try sends req once on a pooled socket and waits for the matching answer until
// deadline or ctx is done.
func (u *UDP) try(ctx context.Context, req *dns.Msg, deadline time.Time) (*dns.Msg, error) {
	wbuf := getBuf()
	defer putBuf(wbuf)
	id := randID()
	wire, err := packQuery(req, id, 0, *wbuf)
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}

	conn, err := u.socks.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("dialing: %w", err)
	}
	reusable := false
	defer func() { u.socks.put(conn, reusable) }()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer func() { reusable = stop() && reusable }()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := conn.Write(wire); err != nil {
		return nil, fmt.Errorf("sending: %w", err)
	}

	rbuf := getBuf()
	defer putBuf(rbuf)
	for {
		n, err := conn.Read(*rbuf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctxError(ctx)
			}
			if isTimeout(err) {
				return nil, ErrTimeout
			}
			return nil, fmt.Errorf("receiving: %w", err)
		}
		resp, why := unpackResponse(req, (*rbuf)[:n], id)
		if why != "" {
			u.m.drop(why)
			u.log.Debug("dropped a datagram", "reason", string(why), "bytes", n)
			continue
		}
		reusable = true
		return resp, nil
	}
}
