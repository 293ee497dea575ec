package ike

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// Conn carries IKE messages to and from one gateway. Implementations add and
// strip the non-ESP marker on port 4500 (RFC 3948 §2.2).
type Conn interface {
	// Send transmits one IKE message. It must not retain b.
	Send(b []byte) error
	// Receive returns the next IKE message from the gateway, blocking until
	// one arrives or ctx is done; it must return promptly once ctx is done,
	// so that an ended session does not take messages meant for the next.
	Receive(ctx context.Context) ([]byte, error)
}

// Keyer receives CHILD_SA keys; the ESP data plane implements it. Calls come
// from one goroutine at a time and must not block for long.
type Keyer interface {
	// AddChild installs both directions of a CHILD_SA. When c.Replaces is
	// non-zero the new SA rekeys the one with that inbound SPI: switch
	// outbound to the new SA and keep the old inbound SA until DeleteChild.
	AddChild(c ChildSA) error
	// ActivateChild switches outbound to a CHILD_SA installed with
	// DeferOutbound (the gateway rekeyed and has now deleted the old SA).
	ActivateChild(inSPI uint32) error
	// DeleteChild removes the CHILD_SA whose inbound SPI is inSPI; the ESP
	// layer may keep accepting its packets for a short grace period.
	DeleteChild(inSPI uint32)
}

// ChildSA is one negotiated CHILD_SA, from our point of view: In is what the
// gateway sends us, Out what we send it.
type ChildSA struct {
	InSPI, OutSPI uint32
	// Cipher is the IKEv2 ENCR transform ID (12 AES-CBC, 20 AES-GCM-16, 28
	// ChaCha20-Poly1305), KeyBits its key size (256 for ChaCha20).
	Cipher  uint16
	KeyBits int
	// Integ is the INTEG transform ID, 0 with an AEAD.
	Integ uint16
	// InKey and OutKey are encryption keys; AEAD keys end with the 4-byte
	// salt. InInteg and OutInteg are empty with an AEAD.
	InKey, OutKey, InInteg, OutInteg []byte
	ESN                              bool
	// Local and Remote are the traffic selectors the gateway agreed to
	// (TSi and TSr, possibly narrowed): route only inside them.
	Local, Remote []wire.Selector
	// Replaces is the inbound SPI of the CHILD_SA this one rekeys, or 0.
	Replaces uint32
	// DeferOutbound asks to install only the inbound SA for now: we answered
	// the gateway's rekey and keep sending on the old SA until the gateway
	// deletes it (RFC 7296 §2.8), then ActivateChild follows.
	DeferOutbound bool
}

// Identity is an IKE identity (RFC 7296 §3.5).
type Identity struct {
	Type  uint8 // wire.IDFQDN, wire.IDKeyID, wire.IDRFC822, wire.IDIPv4 …
	Value []byte
}

// FQDN returns an ID_FQDN identity.
func FQDN(name string) Identity { return Identity{Type: wire.IDFQDN, Value: []byte(name)} }

// KeyID returns an ID_KEY_ID identity.
func KeyID(id []byte) Identity { return Identity{Type: wire.IDKeyID, Value: id} }

func (i Identity) String() string {
	if i.Type == wire.IDKeyID {
		return fmt.Sprintf("keyid:%x", i.Value)
	}
	return string(i.Value)
}

// Config configures one initiator. It is copied by Dial and must not be
// changed afterwards.
type Config struct {
	// Local and Remote are the IKE identities. Remote may be empty, which
	// accepts whatever IDr the gateway proves with the PSK.
	Local, Remote Identity
	// PSK is the pre-shared key (RFC 7296 §2.15). Never logged. It
	// authenticates us unless Certificate is set, and the gateway unless
	// RootCAs is set.
	PSK []byte
	// Certificate is our chain (DER, leaf first) and PrivateKey its key
	// (ECDSA, RSA or Ed25519): we then authenticate with an RFC 7427
	// signature. Local should be an identity in the leaf (its FQDN SAN, or
	// DN(leaf)).
	Certificate [][]byte
	PrivateKey  crypto.Signer
	// RootCAs, when set, are the CAs the gateway's certificate must chain
	// to; the gateway must then authenticate with a signature and its IDr
	// must be in its certificate.
	RootCAs []*x509.Certificate
	// LocalAddr and RemoteAddr are the outer addresses, used for the NAT
	// detection hashes (RemoteAddr must be the gateway's address and port).
	LocalAddr, RemoteAddr netip.AddrPort
	// IKEProposals and ESPProposals; nil means DefaultIKEProposals and
	// DefaultESPProposals.
	IKEProposals, ESPProposals []Proposal
	// Group is the KE group of the first IKE_SA_INIT, e.g. Info.Group of
	// an earlier IKE SA with this gateway, which saves an
	// INVALID_KE_PAYLOAD round trip. Zero, or a group not in IKEProposals,
	// means the first group of the first proposal.
	Group uint16
	// InnerAddress is our address inside the tunnel. When invalid, a
	// virtual IP is requested with a CP payload: INTERNAL_IP4_ADDRESS, and
	// INTERNAL_IP6_ADDRESS too when RemoteNets has an IPv6 prefix.
	InnerAddress netip.Addr
	// RemoteNets are the prefixes to reach through the tunnel (TSr); empty
	// means 0.0.0.0/0, narrowed by the gateway.
	RemoteNets []netip.Prefix
	// InitialContact sends INITIAL_CONTACT, telling the gateway to drop
	// stale SAs of our identity (set it on the first IKE SA after start).
	InitialContact bool
	// RetransmitTimeout is the first retransmission delay (zero: 1 s); it
	// grows by 1.8× per try, for RetransmitTries tries (zero: 5).
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// ChildRekey is the CHILD_SA soft lifetime: we rekey each CHILD_SA
	// after ChildRekey minus up to 10% jitter (zero: 50 min, below
	// strongSwan's 1 h; negative: never).
	ChildRekey time.Duration
	// IKERekey is the IKE SA soft lifetime, with the same jitter (zero:
	// 3 h, below strongSwan's 4 h; negative: never). The gateway may rekey
	// first; either way the CHILD_SAs carry over.
	IKERekey time.Duration
	// PFS, when set, runs a KE with this group in CHILD_SA rekeys; it must
	// be in ESPProposals' Groups (or those are taken to be just this group).
	PFS uint16
	// FragmentSize is the largest IKE message we send unfragmented once
	// the gateway supports RFC 7383 fragmentation (zero: 1248, which with
	// the non-ESP marker, UDP and IPv4 headers makes 1280-byte packets).
	FragmentSize int
	// DPDDelay is the silence after which we probe the gateway with an
	// empty INFORMATIONAL (zero: 30 s; negative: never).
	DPDDelay time.Duration
	// InboundActivity, when set, returns a counter of authenticated inbound
	// ESP packets; while it moves, the gateway is alive and DPD does not
	// probe. nil: only IKE messages count.
	InboundActivity func() uint64
	// Rand is the randomness source (nil: crypto/rand).
	Rand io.Reader
	// Logger receives lifecycle logs (nil: discarded).
	Logger *slog.Logger
}

// Validate checks c as Dial would, for configuration checks before start.
func (c *Config) Validate() error {
	if (len(c.Certificate) == 0 || len(c.RootCAs) == 0) && len(c.PSK) == 0 {
		return errors.New("ike: PSK is required unless both Certificate and RootCAs are set")
	}
	if len(c.Certificate) > 0 && c.PrivateKey == nil {
		return errors.New("ike: Certificate needs PrivateKey")
	}
	if len(c.Local.Value) == 0 || c.Local.Type == 0 {
		return errors.New("ike: local identity is required")
	}
	if !c.RemoteAddr.IsValid() {
		return errors.New("ike: remote address is required")
	}
	for _, p := range c.IKEProposals {
		if err := p.validate(true); err != nil {
			return fmt.Errorf("ike: IKE proposal: %w", err)
		}
	}
	for _, p := range c.ESPProposals {
		if err := p.validate(false); err != nil {
			return fmt.Errorf("ike: ESP proposal: %w", err)
		}
	}
	return nil
}

// NotifyError is an error notification from the gateway (RFC 7296 §3.10.1),
// such as AUTHENTICATION_FAILED or NO_PROPOSAL_CHOSEN.
type NotifyError struct {
	Type     uint16
	Exchange string
}

func (e *NotifyError) Error() string {
	return fmt.Sprintf("ike: gateway answered %s with %s", e.Exchange, notifyName(e.Type))
}

func notifyName(t uint16) string {
	switch t {
	case wire.NotifyUnsupportedCritical:
		return "UNSUPPORTED_CRITICAL_PAYLOAD"
	case wire.NotifyInvalidIKESPI:
		return "INVALID_IKE_SPI"
	case wire.NotifyInvalidSyntax:
		return "INVALID_SYNTAX"
	case wire.NotifyNoProposalChosen:
		return "NO_PROPOSAL_CHOSEN"
	case wire.NotifyInvalidKEPayload:
		return "INVALID_KE_PAYLOAD"
	case wire.NotifyAuthenticationFailed:
		return "AUTHENTICATION_FAILED"
	case wire.NotifyInternalAddrFailure:
		return "INTERNAL_ADDRESS_FAILURE"
	case wire.NotifyFailedCPRequired:
		return "FAILED_CP_REQUIRED"
	case wire.NotifyTSUnacceptable:
		return "TS_UNACCEPTABLE"
	case wire.NotifyTemporaryFailure:
		return "TEMPORARY_FAILURE"
	case wire.NotifyChildSANotFound:
		return "CHILD_SA_NOT_FOUND"
	case wire.NotifySinglePairRequired:
		return "SINGLE_PAIR_REQUIRED"
	}
	return fmt.Sprintf("notify %d", t)
}

// Errors returned by Dial and the session.
var (
	ErrAuth       = errors.New("ike: gateway failed authentication")
	ErrTimeout    = errors.New("ike: gateway did not answer")
	ErrClosed     = errors.New("ike: session closed")
	ErrPeerDelete = errors.New("ike: gateway deleted the IKE SA")
)
