package ipsec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
	"github.com/laminadns/lamina/ipsec/ike"
)

// rekeyGrace is how long an old inbound CHILD_SA keeps accepting packets
// after it was deleted or replaced (strongSwan's delete_rekeyed_delay).
const rekeyGrace = 5 * time.Second

// IKETunnel is a Tunnel keyed and kept up by Lamina's IKEv2 initiator. When
// the IKE SA is lost (gateway DELETE, dead peer) it is re-established with
// backoff; meanwhile dials wait (bounded by their ctx) and nothing is sent.
type IKETunnel struct {
	*Tunnel
	cfg    ike.Config
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	addrs   []netip.Addr // inner addresses added from CP
	sess    *ike.Session
	lastErr error
	ups     int
	group   uint16 // KE group the gateway accepted last
}

// Dial opens the tunnel described by cfg (cfg.IKE must be nil: IKE messages
// are read from the tunnel) and runs IKEv2 with ikeCfg over its socket. It
// returns once the first CHILD_SA is installed. ikeCfg.RemoteAddr and
// LocalAddr default to the socket's addresses; the virtual IP from the
// gateway (or ikeCfg.InnerAddress) becomes the inner address and the
// negotiated TSr the routes.
func Dial(ctx context.Context, cfg Config, ikeCfg ike.Config) (*IKETunnel, error) {
	if cfg.IKE != nil {
		return nil, errors.New("ipsec: Dial reads IKE from the tunnel; Config.IKE must be nil")
	}
	if cfg.Conn == nil {
		if !cfg.Gateway.IsValid() {
			return nil, errors.New("ipsec: Config needs Conn or Gateway")
		}
		gw := cfg.Gateway
		if gw.Port() == 0 {
			gw = netip.AddrPortFrom(gw.Addr(), DefaultNATTPort)
		}
		dial := cfg.Dial
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		c, err := dial(ctx, "udp", gw.String())
		if err != nil {
			return nil, fmt.Errorf("ipsec: dialing gateway %v: %w", gw, err)
		}
		cfg.Conn = c
	}
	if ap, ok := addrPort(cfg.Conn.RemoteAddr()); ok && !ikeCfg.RemoteAddr.IsValid() {
		ikeCfg.RemoteAddr = ap
	}
	if ap, ok := addrPort(cfg.Conn.LocalAddr()); ok && !ikeCfg.LocalAddr.IsValid() {
		ikeCfg.LocalAddr = ap
	}
	if ikeCfg.Logger == nil {
		ikeCfg.Logger = cfg.Logger
	}
	if a := ikeCfg.InnerAddress; a.IsValid() && !containsAddr(cfg.Addresses, a) {
		cfg.Addresses = append(cfg.Addresses, a)
	}
	// A soft lifetime (sequence numbers, bytes) of a CHILD_SA asks IKE for
	// a rekey; the caller's own OnSAEvent still sees every event.
	var it *IKETunnel
	var itMu sync.Mutex
	userEvent := cfg.OnSAEvent
	cfg.OnSAEvent = func(ev esp.Event) {
		if userEvent != nil {
			userEvent(ev)
		}
		itMu.Lock()
		tun := it
		itMu.Unlock()
		if ev.Kind == esp.EventSoft && tun != nil {
			tun.mu.Lock()
			if tun.sess != nil {
				tun.sess.RekeyChild(ev.SPI)
			}
			tun.mu.Unlock()
		}
	}
	t, err := New(ctx, cfg)
	if err != nil {
		cfg.Conn.Close()
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	itMu.Lock()
	it = &IKETunnel{Tunnel: t, cfg: ikeCfg, cancel: cancel, done: make(chan struct{})}
	itMu.Unlock()
	if it.cfg.InboundActivity == nil {
		it.cfg.InboundActivity = func() uint64 { return t.Stats().PacketsIn }
	}
	first := it.cfg
	first.InitialContact = true
	if err := it.establish(ctx, first); err != nil {
		cancel()
		t.Close()
		return nil, err
	}
	go it.supervise(life)
	return it, nil
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	return netip.AddrPort{}, false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, b := range as {
		if b == a {
			return true
		}
	}
	return false
}

func (it *IKETunnel) establish(ctx context.Context, cfg ike.Config) error {
	s, err := ike.Dial(ctx, IKEConn{T: it.Tunnel}, &keyer{t: it.Tunnel, out: map[uint32]uint32{}, pending: map[uint32]esp.Config{}}, cfg)
	if err != nil {
		it.mu.Lock()
		it.lastErr = err
		it.mu.Unlock()
		return err
	}
	info := s.Info()
	for _, a := range info.VirtualIPs {
		it.mu.Lock()
		known := containsAddr(it.addrs, a)
		it.addrs = append(it.addrs, a)
		it.mu.Unlock()
		if known {
			continue
		}
		if err := it.AddAddress(a); err != nil {
			s.Close(ctx)
			return fmt.Errorf("ipsec: adding virtual IP %v: %w", a, err)
		}
	}
	it.mu.Lock()
	it.sess, it.lastErr = s, nil
	it.group = info.Group
	it.ups++
	it.mu.Unlock()
	return nil
}

// supervise re-establishes the IKE SA when it ends, with exponential
// backoff from 1 s to 30 s, until Close.
func (it *IKETunnel) supervise(ctx context.Context) {
	defer close(it.done)
	backoff := time.Second
	for {
		it.mu.Lock()
		s := it.sess
		it.mu.Unlock()
		if s != nil {
			select {
			case <-ctx.Done():
				return
			case <-s.Done():
			}
			it.mu.Lock()
			it.sess, it.lastErr = nil, s.Err()
			it.mu.Unlock()
			it.ClearOutbound()
			it.log.Warn("IKE SA lost; re-establishing", "err", s.Err())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		cfg := it.cfg
		cfg.InitialContact = true // our old SAs are gone: let the gateway drop its copies
		it.mu.Lock()
		cfg.Group = it.group // the gateway's KE group: no INVALID_KE round trip
		it.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := it.establish(dctx, cfg)
		cancel()
		if err != nil {
			it.log.Warn("re-establishing IKE SA", "err", err)
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
	}
}

// IKEStatus is the keying state of an IKETunnel.
type IKEStatus struct {
	Up      bool
	Info    ike.Info
	LastErr error // why the last IKE SA ended or failed, if any
	Ups     int   // IKE SAs established so far
}

// IKEStatus reports the current IKE SA.
func (it *IKETunnel) IKEStatus() IKEStatus {
	it.mu.Lock()
	defer it.mu.Unlock()
	st := IKEStatus{Up: it.sess != nil, LastErr: it.lastErr, Ups: it.ups}
	if it.sess != nil {
		st.Info = it.sess.Info()
	}
	return st
}

// Close deletes the IKE SA at the gateway (waiting at most 3 s for its
// answer), then closes the tunnel. Idempotent.
func (it *IKETunnel) Close() error {
	it.cancel()
	<-it.done
	it.mu.Lock()
	s := it.sess
	it.sess = nil
	it.mu.Unlock()
	var err error
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = s.Close(ctx)
		cancel()
	}
	return errors.Join(err, it.Tunnel.Close())
}

// keyer installs CHILD_SAs from IKE into the tunnel's SA database.
type keyer struct {
	t       *Tunnel
	mu      sync.Mutex
	out     map[uint32]uint32     // inbound SPI → outbound SPI
	pending map[uint32]esp.Config // outbound SAs waiting for ActivateChild
}

func espConfigs(c ike.ChildSA) (in, out esp.Config) {
	suite := esp.Suite{Cipher: esp.Cipher(c.Cipher), KeyBits: c.KeyBits, Integ: esp.Integ(c.Integ)}
	in = esp.Config{SPI: c.InSPI, Direction: esp.Inbound, Suite: suite, EncKey: c.InKey, IntegKey: c.InInteg, ESN: c.ESN}
	out = esp.Config{SPI: c.OutSPI, Direction: esp.Outbound, Suite: suite, EncKey: c.OutKey, IntegKey: c.OutInteg, ESN: c.ESN}
	return in, out
}

// AddChild implements ike.Keyer: inbound first, then the atomic outbound
// switch, then routes limited to the agreed TSr.
func (k *keyer) AddChild(c ike.ChildSA) error {
	in, out := espConfigs(c)
	if c.DeferOutbound {
		if err := k.t.AddInbound(in); err != nil {
			return err
		}
		k.mu.Lock()
		k.pending[c.InSPI] = out
		k.mu.Unlock()
	} else if err := k.t.InstallChildSA(in, out); err != nil {
		return err
	}
	var routes []netip.Prefix
	for _, s := range c.Remote {
		routes = append(routes, ike.Prefixes(s)...)
	}
	k.t.SetRemoteTS(routes)
	k.mu.Lock()
	k.out[c.InSPI] = c.OutSPI
	k.mu.Unlock()
	return nil
}

// ActivateChild implements ike.Keyer: the atomic outbound switch to a
// CHILD_SA the gateway created by rekeying.
func (k *keyer) ActivateChild(inSPI uint32) error {
	k.mu.Lock()
	out, ok := k.pending[inSPI]
	delete(k.pending, inSPI)
	k.mu.Unlock()
	if !ok {
		return fmt.Errorf("ipsec: no pending outbound SA for inbound SPI %#x", inSPI)
	}
	return k.t.SetOutbound(out)
}

// DeleteChild implements ike.Keyer: the inbound SA drains for a grace
// period; if it was the current pair, nothing is sent until a new one.
func (k *keyer) DeleteChild(inSPI uint32) {
	k.mu.Lock()
	out, ok := k.out[inSPI]
	delete(k.out, inSPI)
	delete(k.pending, inSPI)
	k.mu.Unlock()
	if cur, up := k.t.Outbound(); ok && up && cur == out {
		k.t.ClearOutbound()
	}
	k.t.RemoveInbound(inSPI, rekeyGrace)
}
