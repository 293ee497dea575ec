package ipsec

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/laminadns/lamina/ipsec/esp"
)

// Defaults for Config's zero values.
const (
	DefaultKeepalive   = 20 * time.Second // RFC 3948 §4; strongSwan's keep_alive
	DefaultMTU         = 1400
	DefaultNATTPort    = 4500
	DefaultIKEQueueLen = 64
)

// IKEHandler receives IKE messages that arrived behind the non-ESP marker
// (RFC 3948 §2.2). HandleIKE runs on the tunnel's receive goroutine: it must
// not block (queue the message and return). msg is owned by the handler.
type IKEHandler interface {
	HandleIKE(msg []byte)
}

// Config configures a Tunnel. Only Gateway (or Conn) is required.
type Config struct {
	// Conn is the outer UDP socket, connected to the gateway's NAT-T port.
	// The tunnel takes ownership and closes it. When nil, New dials Gateway
	// from an ephemeral port with Dial.
	Conn net.Conn
	// Gateway is the gateway's address; port 0 means 4500. Used when Conn
	// is nil.
	Gateway netip.AddrPort
	// Dial opens the outer socket when Conn is nil; nil means net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)

	// Addresses are the inner addresses of the local netstack (the IKE
	// virtual IP, or configured). More can be added with AddAddress.
	Addresses []netip.Addr
	// RemoteTS are the remote traffic selectors: the only destinations the
	// tunnel carries. Empty means none until SetRemoteTS.
	RemoteTS []netip.Prefix
	// MTU is the inner MTU; 0 means 1400. At least 1280 with IPv6.
	MTU int
	// QueueLen bounds the netstack's outbound queue; 0 means 1024.
	QueueLen int
	// Keepalive is the outbound idle time after which a NAT keepalive is
	// sent; 0 means 20 s, negative disables keepalives.
	Keepalive time.Duration

	// Manual installs static SAs at New (manual keying).
	Manual *Manual
	// IKE receives IKE messages. When nil they are queued (up to 64, then
	// dropped and counted) for ReadIKE.
	IKE IKEHandler
	// OnSAEvent receives lifetime events of every SA whose esp.Config has
	// no OnEvent of its own. It must not block.
	OnSAEvent func(esp.Event)
	// Logger; nil discards.
	Logger *slog.Logger
}

// Manual is a pair of statically keyed SAs (manual keying, RFC 4301
// §4.5): In is what the peer sends us, Out what we send.
type Manual struct {
	In, Out StaticSA
}

// StaticSA describes one SA in configuration-file terms.
type StaticSA struct {
	SPI uint32
	// Suite is an esp.ParseSuite name: aes128gcm16, aes256gcm16,
	// chacha20poly1305, aes128-sha256, aes256-sha256.
	Suite string
	// Key is the hex encryption key, including the 4-byte salt for AEAD
	// suites; IntegKey the hex HMAC key for CBC suites.
	Key, IntegKey string
	ESN           bool
}

// ESPConfig converts s to an esp.Config for direction d.
func (s StaticSA) ESPConfig(d esp.Direction) (esp.Config, error) {
	suite, err := esp.ParseSuite(s.Suite)
	if err != nil {
		return esp.Config{}, err
	}
	key, err := hex.DecodeString(s.Key)
	if err != nil {
		return esp.Config{}, fmt.Errorf("ipsec: SA %#x key: %w", s.SPI, err)
	}
	var integ []byte
	if s.IntegKey != "" {
		if integ, err = hex.DecodeString(s.IntegKey); err != nil {
			return esp.Config{}, fmt.Errorf("ipsec: SA %#x integrity key: %w", s.SPI, err)
		}
	}
	return esp.Config{SPI: s.SPI, Direction: d, Suite: suite, EncKey: key, IntegKey: integ, ESN: s.ESN}, nil
}

func (c *Config) validate() error {
	if c.Conn == nil && !c.Gateway.IsValid() {
		return errors.New("ipsec: Config needs Conn or Gateway")
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535-esp.MaxHeadroom-esp.MaxTailroom) {
		return fmt.Errorf("ipsec: MTU %d out of range", c.MTU)
	}
	for _, p := range c.RemoteTS {
		if !p.IsValid() {
			return fmt.Errorf("ipsec: invalid traffic selector %v", p)
		}
	}
	return nil
}
