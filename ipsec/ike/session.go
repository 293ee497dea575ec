package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// Session is an established IKE SA with the gateway and its CHILD_SAs. A
// single goroutine owns its state; the exported methods are safe for
// concurrent use.
type Session struct {
	cfg   Config
	conn  Conn
	keyer Keyer
	log   *slog.Logger
	rand  io.Reader

	in     chan []byte
	cancel context.CancelFunc
	done   chan struct{}
	closeC chan chan error
	rekeyC chan uint32

	mu   sync.Mutex
	err  error
	info Info

	// Owned by the session goroutine once Dial returns.
	ike         *ikeSA            // current IKE SA
	retiring    []*ikeSA          // rekeyed IKE SAs, until their DELETE is done
	children    map[uint32]*child // by inbound SPI
	rekeying    uint32            // inbound SPI of the CHILD_SA we are rekeying
	rekeyingIKE bool              // our IKE rekey is in flight
	collided    *child            // the gateway\'s CHILD_SA created while ours was in flight
	collidedIKE *ikeSA            // the gateway\'s IKE SA created while our IKE rekey was in flight
	lastRecv    time.Time
	activity    uint64 // last Config.InboundActivity value
}

// ikeSA is the state of one IKE SA.
type ikeSA struct {
	spiI, spiR uint64
	weInit     bool // we hold SPIi (false after a gateway-initiated rekey)
	suite      suite
	keys       *ikeKeys
	nextOut    uint32    // message ID of our next request
	nextIn     uint32    // message ID of the gateway's next request
	lastResp   [][]byte  // our response to the gateway's request nextIn-1
	rekeyAt    time.Time // when we rekey this IKE SA
	ni, nr     []byte    // nonces of a gateway rekey that collided with ours
	frag       bool      // RFC 7383 fragmentation negotiated
	reasm      *reassembly
}

type child struct {
	sa         ChildSA
	suite      suite
	replacedBy uint32    // inbound SPI of the CHILD_SA that rekeyed this one
	deferred   bool      // installed inbound only, outbound waits for Activate
	rekeyAt    time.Time // when we rekey it (soft lifetime with jitter)
	ni, nr     []byte    // nonces of the exchange that created it, kept for collisions
}

// Info describes what was negotiated.
type Info struct {
	// VirtualIPs are the addresses assigned by the gateway via CP.
	VirtualIPs []netip.Addr
	// DNS are the INTERNAL_IP4/6_DNS servers the gateway sent.
	DNS []netip.Addr
	// Group is the KE group the gateway accepted; pass it back as
	// Config.IKEProposals order on re-establishment to skip INVALID_KE.
	Group uint16
	// ChildRekeys and IKERekeys count completed rekeys, by either side.
	ChildRekeys, IKERekeys int
	// Local and Remote are the first CHILD_SA's traffic selectors.
	Local, Remote []wire.Selector
}

// Dial runs IKE_SA_INIT and IKE_AUTH over conn and returns once the first
// CHILD_SA is installed in keyer. The session then answers the gateway,
// probes it when silent and runs until Close, ctx-independent failure or a
// DELETE from the gateway (see Done and Err). ctx bounds only the setup.
func Dial(ctx context.Context, conn Conn, keyer Keyer, cfg Config) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.IKEProposals == nil {
		cfg.IKEProposals = DefaultIKEProposals()
	}
	if cfg.ESPProposals == nil {
		cfg.ESPProposals = DefaultESPProposals()
	}
	if cfg.RetransmitTimeout == 0 {
		cfg.RetransmitTimeout = time.Second
	}
	if cfg.RetransmitTries == 0 {
		cfg.RetransmitTries = 5
	}
	if cfg.ChildRekey == 0 {
		cfg.ChildRekey = 50 * time.Minute
	}
	if cfg.IKERekey == 0 {
		cfg.IKERekey = 3 * time.Hour
	}
	if cfg.FragmentSize == 0 {
		cfg.FragmentSize = 1248
	}
	if cfg.DPDDelay == 0 {
		cfg.DPDDelay = 30 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	life, cancel := context.WithCancel(context.Background())
	s := &Session{
		cfg: cfg, conn: conn, keyer: keyer, rand: cfg.Rand,
		log:    log.With("component", "ike", "gateway", cfg.RemoteAddr.String()),
		in:     make(chan []byte, 32),
		cancel: cancel, done: make(chan struct{}), closeC: make(chan chan error), rekeyC: make(chan uint32, 8),
		children: map[uint32]*child{},
	}
	go s.read(life)
	if err := s.establish(ctx); err != nil {
		cancel()
		return nil, err
	}
	go s.run(life)
	return s, nil
}

// read moves messages from conn to the session goroutine.
func (s *Session) read(ctx context.Context) {
	for {
		b, err := s.conn.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("receiving", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond): // bounded spin on a failing socket
			}
			continue
		}
		select {
		case s.in <- b:
		default: // session busy: the gateway retransmits
		}
	}
}

// Info returns what was negotiated.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

// Done is closed when the session has ended; Err tells why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// RekeyIKE asks for the IKE SA to be rekeyed now. It does not block.
func (s *Session) RekeyIKE() {
	select {
	case s.rekeyC <- 0:
	default:
	}
}

// RekeyChild asks for the CHILD_SA with this inbound or outbound SPI to be
// rekeyed now, say because the ESP layer hit a soft lifetime (sequence
// numbers, bytes). It does not block; unknown SPIs are ignored.
func (s *Session) RekeyChild(spi uint32) {
	select {
	case s.rekeyC <- spi:
	default:
	}
}

// Close sends a DELETE for the IKE SA (which deletes its CHILD_SAs, RFC 7296
// §1.4.1), waits for the answer within ctx, and stops the session.
func (s *Session) Close(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.closeC <- reply:
	case <-s.done:
		return nil
	}
	select {
	case err := <-reply:
		<-s.done
		return err
	case <-ctx.Done():
		s.cancel()
		<-s.done
		return ctx.Err()
	}
}

func (s *Session) newSPI32() uint32 {
	var b [4]byte
	for {
		io.ReadFull(s.rand, b[:])
		if v := binary.BigEndian.Uint32(b[:]); v > 255 {
			return v
		}
	}
}

func (s *Session) newSPI64() uint64 {
	var b [8]byte
	for {
		io.ReadFull(s.rand, b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

func (s *Session) nonce() []byte {
	b := make([]byte, 32)
	io.ReadFull(s.rand, b)
	return b
}

func (s *Session) header(exch uint8, id uint32, response bool) wire.Header {
	return s.ike.header(exch, id, response)
}

func (sa *ikeSA) header(exch uint8, id uint32, response bool) wire.Header {
	h := wire.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: id}
	if sa.weInit {
		h.Flags |= wire.FlagInitiator
	}
	if response {
		h.Flags |= wire.FlagResponse
	}
	return h
}

// response is a decoded, authenticated answer to one of our requests.
type response struct {
	raw      []byte
	msg      *wire.Message
	payloads []wire.Payload // decrypted, or the clear payloads of IKE_SA_INIT
}

// roundTrip sends req (message ID id) and waits for the matching response,
// resending the identical bytes with backoff (RFC 7296 §2.1). Gateway
// requests arriving meanwhile are answered. encrypted=false is for
// IKE_SA_INIT, whose response carries the SPIr we learn from it.
func (s *Session) roundTrip(ctx context.Context, sa *ikeSA, req [][]byte, exch uint8, id uint32, encrypted bool) (*response, error) {
	wait := s.cfg.RetransmitTimeout
	for try := 0; try < s.cfg.RetransmitTries; try++ {
		s.send(req)
		t := time.NewTimer(wait)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
				waiting = false
			case raw := <-s.in:
				r, err := s.accept(raw, sa, exch, id, encrypted)
				if err != nil {
					s.log.Debug("dropping message", "err", err)
					continue
				}
				if r != nil {
					t.Stop()
					return r, nil
				}
			}
		}
		wait = wait * 9 / 5
	}
	return nil, fmt.Errorf("%w: %d tries", ErrTimeout, s.cfg.RetransmitTries)
}

// request sends one encrypted request on the current IKE SA and waits for
// its response. The exchange completes on that SA even if the gateway
// rekeys the IKE SA meanwhile (RFC 7296 §2.18).
func (s *Session) request(ctx context.Context, exch uint8, ps []wire.Payload) (*response, error) {
	sa := s.ike
	id := sa.nextOut
	sa.nextOut++
	req, err := s.seal(sa, sa.header(exch, id, false), ps)
	if err != nil {
		return nil, err
	}
	return s.roundTrip(ctx, sa, req, exch, id, true)
}

// accept handles one inbound message while we wait for a response: it
// returns the response when raw is it, answers gateway requests, and drops
// the rest.
func (s *Session) accept(raw []byte, sa *ikeSA, exch uint8, id uint32, encrypted bool) (*response, error) {
	m, err := wire.Parse(raw)
	if err != nil {
		return nil, err
	}
	if !encrypted {
		if m.SPIi != sa.spiI || !m.IsResponse() {
			return nil, errors.New("not our IKE_SA_INIT response")
		}
	} else if !m.IsResponse() {
		return nil, s.inbound(raw)
	} else if m.SPIi != sa.spiI || m.SPIr != sa.spiR {
		return nil, errors.New("response for another IKE SA")
	}
	if m.MessageID != id || m.Exchange != exch {
		return nil, fmt.Errorf("response %d to exchange %d, want %d", m.MessageID, m.Exchange, id)
	}
	if !encrypted {
		return &response{raw: raw, msg: m, payloads: m.Payloads}, nil
	}
	ps, complete, err := s.open(sa, raw, m)
	if err != nil || !complete {
		return nil, err
	}
	s.lastRecvNow()
	return &response{raw: raw, msg: m, payloads: ps}, nil
}

func (s *Session) lastRecvNow() { s.lastRecv = time.Now() }

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// notifyError returns the first error notify among ps, if any.
func notifyError(ps []wire.Payload, exch string) error {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType < 16384 {
			return &NotifyError{Type: n.NotifyType, Exchange: exch}
		}
	}
	return nil
}

func findNotify(ps []wire.Payload, t uint16) *wire.Notify {
	for _, p := range ps {
		if n, ok := p.(*wire.Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}
