package ipsec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
	"github.com/laminadns/lamina/ipsec/netstack"
)

// Tunnel is one ESP-in-UDP tunnel to a gateway with a userspace IP stack
// inside. All methods are safe for concurrent use. Its network methods
// (DialContext, ListenPacket) match upstream.Network.
type Tunnel struct {
	log       *slog.Logger
	conn      net.Conn
	batch     batchConn // nil unless conn is a *net.UDPConn
	st        *netstack.Stack
	keepalive time.Duration
	onEvent   func(esp.Event)
	ike       IKEHandler
	ikeq      chan []byte

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	sadb
	ts atomic.Pointer[[]netip.Prefix]

	c        counters
	start    time.Time    // monotonic base for lastSend
	lastSend atomic.Int64 // when anything was last sent, as time since start
}

type counters struct {
	packetsOut, packetsIn, kaSent, kaRecv       atomic.Uint64
	ikeSent, ikeRecv, ikeDropped                atomic.Uint64
	unknownSPI, noSA, policy, sendErr, recvErrs atomic.Uint64
	injectErrs                                  atomic.Uint64
}

// New opens (or adopts) the outer socket, starts the inner stack and the
// tunnel's goroutines, and installs Config.Manual SAs if given. The tunnel
// carries traffic once it has an outbound SA.
func New(ctx context.Context, cfg Config) (*Tunnel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	st, err := netstack.New(netstack.Config{Addresses: cfg.Addresses, MTU: cmp(cfg.MTU, DefaultMTU), QueueLen: cfg.QueueLen})
	if err != nil {
		return nil, err
	}
	conn := cfg.Conn
	if conn == nil {
		gw := cfg.Gateway
		if gw.Port() == 0 {
			gw = netip.AddrPortFrom(gw.Addr(), DefaultNATTPort)
		}
		dial := cfg.Dial
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		if conn, err = dial(ctx, "udp", gw.String()); err != nil {
			st.Close()
			return nil, fmt.Errorf("ipsec: dialing gateway %v: %w", gw, err)
		}
	}
	allowFragments(conn)
	t := &Tunnel{
		log: cfg.Logger, conn: conn, st: st, keepalive: cmp(cfg.Keepalive, DefaultKeepalive),
		onEvent: cfg.OnSAEvent, ike: cfg.IKE, ikeq: make(chan []byte, DefaultIKEQueueLen),
		batch: newBatchConn(conn), start: time.Now(),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("component", "ipsec", "gateway", conn.RemoteAddr().String())
	t.sadb.init()
	t.SetRemoteTS(cfg.RemoteTS)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if m := cfg.Manual; m != nil {
		in, err := m.In.ESPConfig(esp.Inbound)
		if err == nil {
			err = t.AddInbound(in)
		}
		out, err2 := m.Out.ESPConfig(esp.Outbound)
		if err == nil && err2 == nil {
			err = t.SetOutbound(out)
		}
		if err = errors.Join(err, err2); err != nil {
			t.Close()
			return nil, fmt.Errorf("ipsec: manual SAs: %w", err)
		}
	}
	t.wg.Add(2)
	go t.recvLoop()
	go t.sendLoop()
	if t.keepalive > 0 {
		t.wg.Add(1)
		go t.keepaliveLoop()
	}
	return t, nil
}

func cmp[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Close stops the tunnel: it closes the outer socket and the inner stack
// (open connections fail) and waits for its goroutines. It does not send
// an IKE DELETE; that is the keying layer's job. Idempotent.
func (t *Tunnel) Close() error {
	t.closed.Do(func() {
		if t.cancel != nil {
			t.cancel()
		}
		t.conn.Close()
		t.st.Close()
		t.wg.Wait()
		t.sadb.close()
	})
	return nil
}

// MTU returns the inner MTU.
func (t *Tunnel) MTU() int { return t.st.MTU() }

// AddAddress adds an inner address, e.g. the virtual IP IKE obtained
// (RFC 7296 §3.15).
func (t *Tunnel) AddAddress(a netip.Addr) error { return t.st.AddAddress(a) }

// SetRemoteTS replaces the remote traffic selectors (RFC 7296 §2.9): only
// destinations inside them are dialed or sent, only sources inside them are
// accepted.
func (t *Tunnel) SetRemoteTS(ts []netip.Prefix) {
	c := make([]netip.Prefix, 0, len(ts))
	for _, p := range ts {
		c = append(c, p.Masked())
	}
	t.ts.Store(&c)
}

// ErrOutsideTS is returned when a destination lies outside the remote
// traffic selectors; such traffic is never sent.
var ErrOutsideTS = errors.New("ipsec: destination outside traffic selectors")

func (t *Tunnel) allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range *t.ts.Load() {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (t *Tunnel) String() string {
	return "ipsec:" + t.conn.RemoteAddr().String() + "/mtu=" + strconv.Itoa(t.st.MTU())
}
