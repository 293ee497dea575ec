package ipsec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
)

// sadb is the SA database: inbound SAs by SPI in a copy-on-write map read
// without locks by the receive path, the outbound SA behind one atomic
// pointer read by the (single) send path, so a switch never loses or
// reorders a packet.
type sadb struct {
	mu                    sync.Mutex // serializes writers
	in                    atomic.Pointer[map[uint32]*esp.SA]
	out                   atomic.Pointer[esp.SA]
	up                    chan struct{} // closed while out is set
	timers                map[uint32]*time.Timer
	retiredIn, retiredOut esp.Stats // counters of removed SAs, summed
	switch_               atomic.Uint64
}

func (d *sadb) init() {
	m := map[uint32]*esp.SA{}
	d.in.Store(&m)
	d.up = make(chan struct{})
	d.timers = map[uint32]*time.Timer{}
}

// hook routes an SA's lifetime events to Config.OnSAEvent (unless the SA
// has its own handler) and retires an outbound SA that hits a hard limit,
// so dials wait for its replacement instead of sending into a dead SA.
func (t *Tunnel) hook(cfg *esp.Config) {
	user := cfg.OnEvent
	if user == nil {
		user = t.onEvent
	}
	cfg.OnEvent = func(e esp.Event) {
		if e.Kind == esp.EventHard && e.Direction == esp.Outbound {
			t.expireOutbound(e.SPI)
		}
		if user != nil {
			user(e)
		}
	}
}

func (t *Tunnel) expireOutbound(spi uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.out.Load(); cur != nil && cur.SPI() == spi && cur.State() == esp.StateExpired {
		t.out.Store(nil)
		t.up = make(chan struct{})
		t.retire(cur)
		t.log.Warn("outbound SA reached its hard lifetime; waiting for a new one", "spi", spiString(spi))
	}
}

// AddInbound installs an inbound SA (cfg.Direction is set to Inbound):
// packets with cfg.SPI are accepted from now on, alongside any older SA.
func (t *Tunnel) AddInbound(cfg esp.Config) error {
	cfg.Direction = esp.Inbound
	t.hook(&cfg)
	sa, err := esp.New(cfg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.in.Load()
	if _, dup := old[cfg.SPI]; dup {
		sa.Close()
		return fmt.Errorf("ipsec: inbound SPI %#x already installed", cfg.SPI)
	}
	m := maps.Clone(old)
	m[cfg.SPI] = sa
	t.in.Store(&m)
	t.log.Info("inbound SA installed", "spi", spiString(cfg.SPI), "suite", cfg.Suite.String(), "esn", cfg.ESN)
	return nil
}

func spiString(spi uint32) string { return fmt.Sprintf("%08x", spi) }

// SetOutbound atomically makes a new SA (cfg.Direction is set to Outbound)
// the one every following packet is sealed with. The previous outbound SA
// is retired; packets sealed before the switch were already sent in order.
func (t *Tunnel) SetOutbound(cfg esp.Config) error {
	cfg.Direction = esp.Outbound
	t.hook(&cfg)
	sa, err := esp.New(cfg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old, replaces := t.out.Swap(sa), "none"
	if old == nil {
		close(t.up)
	} else {
		t.retire(old)
		t.switch_.Add(1)
		replaces = spiString(old.SPI())
	}
	t.log.Info("outbound SA active", "spi", spiString(cfg.SPI), "suite", cfg.Suite.String(), "esn", cfg.ESN,
		"replaces", replaces)
	return nil
}

// InstallChildSA installs a Child SA pair: AddInbound(in), then
// SetOutbound(out). This is the order of a rekey's initiator (RFC 7296
// §2.8); a responder calls AddInbound first and SetOutbound when the peer's
// DELETE of the old SA arrives.
func (t *Tunnel) InstallChildSA(in, out esp.Config) error {
	if err := t.AddInbound(in); err != nil {
		return err
	}
	if err := t.SetOutbound(out); err != nil {
		t.RemoveInbound(in.SPI, 0)
		return err
	}
	return nil
}

// RemoveInbound removes the inbound SA with this SPI after grace (at once
// when grace <= 0), so packets already in flight on an old SA are still
// accepted after a rekey. Unknown SPIs are ignored.
func (t *Tunnel) RemoveInbound(spi uint32, grace time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tm := t.timers[spi]; tm != nil {
		tm.Stop()
		delete(t.timers, spi)
	}
	if grace > 0 {
		t.timers[spi] = time.AfterFunc(grace, func() { t.RemoveInbound(spi, 0) })
		return
	}
	old := *t.in.Load()
	sa := old[spi]
	if sa == nil {
		return
	}
	m := maps.Clone(old)
	delete(m, spi)
	t.in.Store(&m)
	t.retire(sa)
	t.log.Info("inbound SA removed", "spi", spiString(spi))
}

// ClearOutbound removes the outbound SA (say the peer deleted it with no
// replacement): packets are dropped and dials wait until SetOutbound. An
// outbound SA past a hard lifetime limit is cleared the same way.
func (t *Tunnel) ClearOutbound() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.out.Swap(nil); old != nil {
		t.up = make(chan struct{})
		t.retire(old)
		t.log.Info("outbound SA cleared", "spi", spiString(old.SPI()))
	}
}

// Outbound returns the current outbound SA's SPI, or false when none.
func (t *Tunnel) Outbound() (uint32, bool) {
	if sa := t.out.Load(); sa != nil {
		return sa.SPI(), true
	}
	return 0, false
}

// ErrNoSA reports that no outbound SA came up before the context ended.
var ErrNoSA = errors.New("ipsec: no outbound SA")

// waitUp blocks until an outbound SA exists, ctx ends or the tunnel closes.
func (t *Tunnel) waitUp(ctx context.Context) error {
	for t.out.Load() == nil {
		t.mu.Lock()
		up := t.up
		t.mu.Unlock()
		if t.out.Load() != nil {
			break
		}
		select {
		case <-up:
		case <-ctx.Done():
			return ErrNoSA
		case <-t.ctx.Done():
			return errClosed
		}
	}
	return nil
}

// retire stops an SA's timers and folds its counters into the totals.
// Called with mu held.
func (d *sadb) retire(sa *esp.SA) {
	sa.Close()
	if sa.Direction() == esp.Inbound {
		addStats(&d.retiredIn, sa.Stats())
	} else {
		addStats(&d.retiredOut, sa.Stats())
	}
}

func (d *sadb) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, tm := range d.timers {
		tm.Stop()
	}
	for _, sa := range *d.in.Load() {
		sa.Close()
	}
	if sa := d.out.Load(); sa != nil {
		sa.Close()
	}
}

func addStats(sum *esp.Stats, s esp.Stats) {
	sum.Packets += s.Packets
	sum.Bytes += s.Bytes
	sum.ReplayDrops += s.ReplayDrops
	sum.AuthFailures += s.AuthFailures
	sum.DecryptErrors += s.DecryptErrors
	sum.PadErrors += s.PadErrors
	sum.DummyDrops += s.DummyDrops
	sum.LifetimeDrops += s.LifetimeDrops
}
