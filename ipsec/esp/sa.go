package esp

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Direction says whether an SA seals (outbound) or opens (inbound).
type Direction uint8

// SA directions.
const (
	Outbound Direction = 1
	Inbound  Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Outbound:
		return "out"
	case Inbound:
		return "in"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// DefaultReplayWindow is the anti-replay window used when
// Config.ReplayWindow is zero.
const DefaultReplayWindow = 4096

// Buffer sizing for any suite: headroom before the payload and room after it
// that Seal may need (see SA.Overhead for one SA's exact needs).
const (
	MaxHeadroom = 8 + 16      // SPI, sequence number, CBC IV
	MaxTailroom = 15 + 2 + 16 // CBC padding, pad length, next header, ICV
)

// Config describes one SA. It is copied by New; the keys are not retained
// beyond the keyed ciphers.
type Config struct {
	// SPI is the SPI carried in the packets: for an inbound SA the value we
	// chose, for an outbound SA the peer's.
	SPI       uint32
	Direction Direction
	Suite     Suite
	// EncKey is the encryption key; for AEAD suites it ends with the 4-byte
	// salt. IntegKey is the HMAC key (CBC suites only). See Suite.KeyLen.
	EncKey, IntegKey []byte
	// ESN enables 64-bit extended sequence numbers (RFC 4303 §2.2.1).
	ESN bool
	// ReplayWindow is the inbound anti-replay window in packets; zero means
	// DefaultReplayWindow. The window used is at least this large.
	ReplayWindow int
	// Lifetime sets soft (rekey) and hard (stop) limits; zero fields are off.
	Lifetime Lifetime
	// OnEvent, when set, is called once per kind (soft, hard) when a limit
	// is crossed, from the goroutine that crossed it or from a timer. It
	// must not block and must not call Seal or Open.
	OnEvent func(Event)
}

// Lifetime limits of an SA (RFC 4301 §4.4.2.1). Zero means no limit.
// Sequence-number exhaustion is always enforced: soft at 2^31 and hard after
// 2^32-1 without ESN, soft at 2^63 and hard after 2^64-1 with ESN.
type Lifetime struct {
	SoftBytes, HardBytes     uint64 // inner payload bytes
	SoftPackets, HardPackets uint64
	SoftTime, HardTime       time.Duration // since New
}

// EventKind tells a soft limit (rekey now) from a hard one (SA is dead).
type EventKind uint8

// Event kinds.
const (
	EventSoft EventKind = 1
	EventHard EventKind = 2
)

func (k EventKind) String() string {
	if k == EventSoft {
		return "soft"
	}
	return "hard"
}

// Reason says which limit raised an Event.
type Reason uint8

// Event reasons.
const (
	ReasonBytes Reason = iota + 1
	ReasonPackets
	ReasonTime
	ReasonSequence
)

func (r Reason) String() string {
	return [...]string{"?", "bytes", "packets", "time", "sequence"}[min(int(r), 4)]
}

// Event reports a lifetime limit crossed by an SA.
type Event struct {
	SPI       uint32
	Direction Direction
	Kind      EventKind
	Reason    Reason
}

// State is an SA's lifetime state.
type State uint8

// SA states.
const (
	StateActive  State = iota // within all limits
	StateSoft                 // a soft limit passed: rekey
	StateExpired              // a hard limit passed: Seal and Open fail with ErrExpired
)

func (s State) String() string { return [...]string{"active", "soft", "expired"}[s] }

// Stats are an SA's counters. Every packet Open rejects is counted in exactly
// one of the *Drops, *Failures or *Errors fields.
type Stats struct {
	SPI       uint32
	Direction Direction
	Suite     string
	ESN       bool
	State     State
	// Seq is the last sequence number sent (outbound) or the highest one
	// accepted (inbound).
	Seq uint64
	// Packets and Bytes count packets sealed, or opened with a valid ICV
	// (dummy packets included); Bytes is their inner payload.
	Packets, Bytes uint64
	ReplayDrops    uint64 // duplicate or left of the window, before decryption
	AuthFailures   uint64 // ICV mismatch
	DecryptErrors  uint64 // truncated, misaligned, wrong SPI or bad inner length
	PadErrors      uint64 // padding not 1, 2, 3, …
	DummyDrops     uint64 // next header 59 (RFC 4303 §2.6)
	LifetimeDrops  uint64 // SA past its hard limit
}

// SA is one direction of a Child SA. Seal is safe for concurrent use (each
// call takes the next sequence number); Open is safe for concurrent use and
// serializes only the replay-window update.
type SA struct {
	spi     uint32
	dir     Direction
	suite   Suite
	esn     bool
	life    Lifetime
	onEvent func(Event)
	t       *transform
	aeadBuf sync.Pool // of *[24]byte: nonce and AAD scratch

	seq atomic.Uint64 // outbound: last sequence number used

	mu  sync.Mutex
	win replayWindow // inbound

	packets, bytes                        atomic.Uint64
	replay, auth, decrypt, pad, dummy, lt atomic.Uint64
	softFired, hardFired                  atomic.Bool
	timers                                []*time.Timer
}

// New keys an SA. See Config for the fields.
func New(cfg Config) (*SA, error) { return newSA(cfg, false) }

func newSA(cfg Config, allowNoInteg bool) (*SA, error) {
	if cfg.Direction != Outbound && cfg.Direction != Inbound {
		return nil, errors.New("esp: Config.Direction must be Inbound or Outbound")
	}
	if cfg.SPI < 256 {
		return nil, fmt.Errorf("esp: SPI %d is reserved (RFC 4303 §2.1)", cfg.SPI)
	}
	if err := cfg.Suite.validate(allowNoInteg); err != nil {
		return nil, err
	}
	if cfg.ReplayWindow < 0 {
		return nil, errors.New("esp: negative ReplayWindow")
	}
	t, err := newTransform(cfg.Suite, cfg.EncKey, cfg.IntegKey)
	if err != nil {
		return nil, err
	}
	s := &SA{spi: cfg.SPI, dir: cfg.Direction, suite: cfg.Suite, esn: cfg.ESN, life: cfg.Lifetime, onEvent: cfg.OnEvent, t: t}
	s.aeadBuf.New = func() any { return new([24]byte) }
	if s.dir == Inbound {
		w := cfg.ReplayWindow
		if w == 0 {
			w = DefaultReplayWindow
		}
		s.win = newReplayWindow(w)
	}
	if d := cfg.Lifetime.SoftTime; d > 0 {
		s.timers = append(s.timers, time.AfterFunc(d, func() { s.limit(EventSoft, ReasonTime) }))
	}
	if d := cfg.Lifetime.HardTime; d > 0 {
		s.timers = append(s.timers, time.AfterFunc(d, func() { s.limit(EventHard, ReasonTime) }))
	}
	return s, nil
}

// SPI returns the SPI carried in this SA's packets.
func (s *SA) SPI() uint32 { return s.spi }

// Direction returns the SA's direction.
func (s *SA) Direction() Direction { return s.dir }

// Suite returns the SA's cipher suite.
func (s *SA) Suite() Suite { return s.suite }

// Overhead returns the headroom Seal needs before the payload and the
// maximum room it needs after it (padding, trailer, ICV, scratch).
func (s *SA) Overhead() (head, tail int) {
	return 8 + s.t.ivLen, s.t.blk - 1 + 2 + s.t.icvLen
}

// State reports the lifetime state.
func (s *SA) State() State {
	switch {
	case s.hardFired.Load():
		return StateExpired
	case s.softFired.Load():
		return StateSoft
	}
	return StateActive
}

// Close stops the lifetime timers. The SA keeps working; the owner stops
// using it.
func (s *SA) Close() {
	for _, t := range s.timers {
		t.Stop()
	}
}

// Stats returns a snapshot of the counters.
func (s *SA) Stats() Stats {
	st := Stats{
		SPI: s.spi, Direction: s.dir, Suite: s.suite.String(), ESN: s.esn, State: s.State(),
		Packets: s.packets.Load(), Bytes: s.bytes.Load(),
		ReplayDrops: s.replay.Load(), AuthFailures: s.auth.Load(), DecryptErrors: s.decrypt.Load(),
		PadErrors: s.pad.Load(), DummyDrops: s.dummy.Load(), LifetimeDrops: s.lt.Load(),
	}
	if s.dir == Outbound {
		st.Seq = s.seq.Load()
	} else {
		s.mu.Lock()
		st.Seq = s.win.top
		s.mu.Unlock()
	}
	return st
}

// account adds one packet of n payload bytes and checks the volume limits.
func (s *SA) account(n int) {
	p := s.packets.Add(1)
	b := s.bytes.Add(uint64(n))
	l := &s.life
	if l.HardPackets > 0 && p >= l.HardPackets {
		s.limit(EventHard, ReasonPackets)
	} else if l.SoftPackets > 0 && p >= l.SoftPackets {
		s.limit(EventSoft, ReasonPackets)
	}
	if l.HardBytes > 0 && b >= l.HardBytes {
		s.limit(EventHard, ReasonBytes)
	} else if l.SoftBytes > 0 && b >= l.SoftBytes {
		s.limit(EventSoft, ReasonBytes)
	}
}

// seqLimits checks a freshly taken outbound sequence number.
func (s *SA) seqLimits(seq uint64) bool {
	hard, soft := uint64(math.MaxUint32), uint64(1<<31)
	if s.esn {
		hard, soft = math.MaxUint64, 1<<63
	}
	if seq == 0 || seq > hard || (s.esn && seq == hard) {
		s.limit(EventHard, ReasonSequence)
		return false
	}
	if seq >= soft {
		s.limit(EventSoft, ReasonSequence)
	}
	return true
}

// limit records a crossed limit and reports it once per kind.
func (s *SA) limit(kind EventKind, r Reason) {
	flag := &s.softFired
	if kind == EventHard {
		flag = &s.hardFired
		s.softFired.Store(true) // a hard limit implies the soft one
	}
	if !flag.CompareAndSwap(false, true) {
		return
	}
	if s.onEvent != nil {
		s.onEvent(Event{SPI: s.spi, Direction: s.dir, Kind: kind, Reason: r})
	}
}
