package ipsec

import (
	"maps"
	"slices"

	"github.com/laminadns/lamina/ipsec/esp"
)

// Stats is a snapshot of a tunnel's counters, for the wiring to export as
// metrics. Counters only grow: SAs removed by a rekey stay in In and Out.
type Stats struct {
	Up          bool        // an outbound SA is installed
	OutboundSPI uint32      // its SPI
	SAs         []esp.Stats // live SAs: outbound first, then inbound
	// In and Out sum the counters of all inbound and outbound SAs, live
	// and removed (SPI and Suite are zero).
	In, Out esp.Stats
	// Switches counts outbound SA replacements (rekeys).
	Switches uint64

	PacketsOut, PacketsIn              uint64 // ESP packets sent; inner packets delivered
	KeepalivesSent, KeepalivesReceived uint64
	IKESent, IKEReceived, IKEDropped   uint64 // IKEDropped: ReadIKE queue full
	UnknownSPI                         uint64 // ESP for no installed SA
	NoSADrops                          uint64 // outbound packets while no SA was up
	PolicyDrops                        uint64 // outside the traffic selectors
	QueueDrops                         uint64 // netstack outbound queue full
	SendErrors, RecvErrors             uint64 // socket errors
	InjectErrors                       uint64 // decrypted payload not IPv4/IPv6 as labelled
}

// Stats returns the counters.
func (t *Tunnel) Stats() Stats {
	s := Stats{
		PacketsOut: t.c.packetsOut.Load(), PacketsIn: t.c.packetsIn.Load(),
		KeepalivesSent: t.c.kaSent.Load(), KeepalivesReceived: t.c.kaRecv.Load(),
		IKESent: t.c.ikeSent.Load(), IKEReceived: t.c.ikeRecv.Load(), IKEDropped: t.c.ikeDropped.Load(),
		UnknownSPI: t.c.unknownSPI.Load(), NoSADrops: t.c.noSA.Load(), PolicyDrops: t.c.policy.Load(),
		QueueDrops: t.st.Drops(), SendErrors: t.c.sendErr.Load(), RecvErrors: t.c.recvErrs.Load(),
		InjectErrors: t.c.injectErrs.Load(), Switches: t.switch_.Load(),
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.In, s.Out = t.retiredIn, t.retiredOut
	if sa := t.out.Load(); sa != nil {
		st := sa.Stats()
		s.Up, s.OutboundSPI = true, st.SPI
		s.SAs = append(s.SAs, st)
		addStats(&s.Out, st)
	}
	in := *t.in.Load()
	for _, spi := range slices.Sorted(maps.Keys(in)) {
		st := in[spi].Stats()
		s.SAs = append(s.SAs, st)
		addStats(&s.In, st)
	}
	return s
}

// Drops returns the drop counters by reason, a bounded label set for a
// lamina_ipsec_drops_total{reason} metric.
func (s Stats) Drops() map[string]uint64 {
	return map[string]uint64{
		"replay":      s.In.ReplayDrops,
		"auth":        s.In.AuthFailures,
		"malformed":   s.In.DecryptErrors,
		"padding":     s.In.PadErrors,
		"dummy":       s.In.DummyDrops,
		"lifetime":    s.In.LifetimeDrops + s.Out.LifetimeDrops,
		"unknown_spi": s.UnknownSPI,
		"no_sa":       s.NoSADrops,
		"policy":      s.PolicyDrops,
		"queue_full":  s.QueueDrops,
		"send_error":  s.SendErrors,
		"not_ip":      s.InjectErrors,
		"ike_queue":   s.IKEDropped,
	}
}
