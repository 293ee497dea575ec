package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/laminadns/lamina/config"
	"github.com/laminadns/lamina/ipsec"
	"github.com/laminadns/lamina/ipsec/ike"
	"github.com/laminadns/lamina/ipsec/ike/wire"
	"github.com/laminadns/lamina/upstream"
)

// tunnelNet is the upstream.Network of one configured IPsec tunnel. The
// tunnel is brought up in the background and dialled again with backoff until
// it is up, so Lamina starts (and answers everything else) while a gateway is
// unreachable; until then dials fail at once and queries routed through the
// tunnel get SERVFAIL with an EDE instead of hanging.
type tunnelNet struct {
	name string
	cur  atomic.Pointer[ipsec.IKETunnel]
	// outerLocal is the ESP-in-UDP socket's local address, for the layers
	// view.
	outerLocal atomic.Pointer[string]
	cancel     context.CancelFunc
	done       chan struct{}
}

var _ upstream.Network = (*tunnelNet)(nil)

func (n *tunnelNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	t, err := n.up()
	if err != nil {
		return nil, err
	}
	return t.DialContext(ctx, network, address)
}

func (n *tunnelNet) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	t, err := n.up()
	if err != nil {
		return nil, err
	}
	return t.ListenPacket(ctx, network, address)
}

// up returns the tunnel when it has an IKE SA. While it is being
// re-established (the gateway restarted, DPD gave up) dials fail at once, so
// queries for internal zones get SERVFAIL with an EDE quickly rather than
// waiting out their timeout for an SA that is not coming soon.
func (n *tunnelNet) up() (*ipsec.IKETunnel, error) {
	t := n.cur.Load()
	if t == nil {
		return nil, fmt.Errorf("tunnel %s is not up", n.name)
	}
	if st := t.IKEStatus(); !st.Up {
		return nil, fmt.Errorf("tunnel %s is down (re-establishing): %v", n.name, st.LastErr)
	}
	return t, nil
}

// close deletes the IKE SA and closes the tunnel.
func (n *tunnelNet) close() {
	n.cancel()
	<-n.done
}

// startTunnel checks tc, reads its secrets and starts bringing it up.
func startTunnel(cfg *config.Config, tc config.Tunnel, log *slog.Logger) (*tunnelNet, error) {
	ic, err := ikeConfig(cfg, tc)
	if err != nil {
		return nil, fmt.Errorf("tunnel %s: %w", tc.Name, err)
	}
	log = log.With("component", "ipsec", "tunnel", tc.Name)
	ic.Logger = log
	ctx, cancel := context.WithCancel(context.Background())
	n := &tunnelNet{name: tc.Name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		backoff := time.Second
		for ctx.Err() == nil {
			t, err := dialTunnel(ctx, tc, ic, log, &n.outerLocal)
			if err == nil {
				log.Info("tunnel up", "gateway", tc.Gateway)
				n.cur.Store(t)
				<-ctx.Done()
				n.cur.Store(nil)
				t.Close()
				return
			}
			log.Warn("tunnel not up; retrying", "err", err.Error(), "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
		}
	}()
	return n, nil
}

// dialTunnel resolves the gateway and runs IKE until the first CHILD_SA.
func dialTunnel(ctx context.Context, tc config.Tunnel, ic ike.Config, log *slog.Logger, outer *atomic.Pointer[string]) (*ipsec.IKETunnel, error) {
	gw, err := gatewayAddr(ctx, tc.Gateway)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, address)
		if err == nil {
			s := c.LocalAddr().String()
			outer.Store(&s)
		}
		return c, err
	}
	return ipsec.Dial(dctx, ipsec.Config{Gateway: gw, MTU: tc.MTU, Logger: log, Dial: dial}, ic)
}

// gatewayAddr turns host[:port] into an address; port 0 means 4500.
func gatewayAddr(ctx context.Context, s string) (netip.AddrPort, error) {
	host, port := s, "0"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(host, port))
	if err == nil {
		return ap, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolving gateway %s: %v", host, err)
	}
	p, _ := netip.ParseAddrPort("0.0.0.0:" + port)
	return netip.AddrPortFrom(ips[0].Unmap(), p.Port()), nil
}

// ikeConfig maps a tunnel's configuration onto ike.Config, reading the PSK
// or certificate files.
func ikeConfig(cfg *config.Config, tc config.Tunnel) (ike.Config, error) {
	ic := ike.Config{
		Local:        identity(tc.LocalID),
		InnerAddress: tc.InnerAddress,
		RemoteNets:   tc.RemoteSubnets,
		ChildRekey:   tc.ChildLifetime.D(),
		IKERekey:     tc.IKELifetime.D(),
		DPDDelay:     tc.DPDDelay.D(),

		RetransmitTimeout: tc.RetransmitTimeout.D(),
		RetransmitTries:   tc.RetransmitTries,
	}
	if tc.RemoteID != "" {
		ic.Remote = identity(tc.RemoteID)
	}
	switch {
	case tc.PSKFile != "" || tc.PSKEnv != "":
		psk, err := secret(cfg, "psk", tc.PSKFile, tc.PSKEnv)
		if err != nil {
			return ic, err
		}
		ic.PSK = psk
	default:
		pair, err := tls.LoadX509KeyPair(cfg.Path(tc.CertFile), cfg.Path(tc.KeyFile))
		if err != nil {
			return ic, fmt.Errorf("cert_file/key_file: %w", err)
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return ic, errors.New("key_file: not a signing key")
		}
		ic.Certificate, ic.PrivateKey = pair.Certificate, signer
	}
	if tc.CAFile != "" {
		roots, err := readCerts(cfg.Path(tc.CAFile))
		if err != nil {
			return ic, fmt.Errorf("ca_file: %w", err)
		}
		ic.RootCAs = roots
	}
	var err error
	if ic.IKEProposals, err = proposals(tc.IKEProposals, true); err != nil {
		return ic, fmt.Errorf("ike_proposals: %w", err)
	}
	if ic.ESPProposals, err = proposals(tc.ESPProposals, false); err != nil {
		return ic, fmt.Errorf("esp_proposals: %w", err)
	}
	return ic, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// identity reads an IKE identity: an IP address, an email (RFC 822) or a
// host name (FQDN).
func identity(s string) ike.Identity {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			return ike.Identity{Type: wire.IDIPv4, Value: a.AsSlice()}
		}
		return ike.Identity{Type: wire.IDIPv6, Value: a.AsSlice()}
	}
	if strings.Contains(s, "@") {
		return ike.Identity{Type: wire.IDRFC822, Value: []byte(s)}
	}
	return ike.FQDN(s)
}

// proposals parses strongSwan-style proposal strings, such as
// "aes256gcm16-prfsha384-x25519" (IKE) or "aes128-sha256-ecp256" (ESP with
// PFS). As in strongSwan, an IKE proposal with integrity but no PRF uses the
// matching PRF. Nil in, nil out (the ike package's defaults).
func proposals(ss []string, isIKE bool) ([]ike.Proposal, error) {
	var out []ike.Proposal
	for _, s := range ss {
		var p ike.Proposal
		for tok := range strings.SplitSeq(strings.ToLower(s), "-") {
			switch tok {
			case "aes128gcm16", "aes128gcm":
				p.Encryption = append(p.Encryption, ike.Encryption{ID: wire.EncrAESGCM16, Bits: 128})
			case "aes256gcm16", "aes256gcm":
				p.Encryption = append(p.Encryption, ike.Encryption{ID: wire.EncrAESGCM16, Bits: 256})
			case "chacha20poly1305":
				p.Encryption = append(p.Encryption, ike.Encryption{ID: wire.EncrChaCha20Poly1305})
			case "aes128", "aes256":
				p.Encryption = append(p.Encryption, ike.Encryption{ID: wire.EncrAESCBC, Bits: map[string]int{"aes128": 128, "aes256": 256}[tok]})
			case "sha256":
				p.Integrity = append(p.Integrity, wire.IntegHMACSHA256128)
			case "sha384":
				p.Integrity = append(p.Integrity, wire.IntegHMACSHA384192)
			case "sha512":
				p.Integrity = append(p.Integrity, wire.IntegHMACSHA512256)
			case "prfsha256":
				p.PRF = append(p.PRF, wire.PRFHMACSHA256)
			case "prfsha384":
				p.PRF = append(p.PRF, wire.PRFHMACSHA384)
			case "prfsha512":
				p.PRF = append(p.PRF, wire.PRFHMACSHA512)
			case "x25519", "curve25519":
				p.Groups = append(p.Groups, wire.GroupX25519)
			case "ecp256":
				p.Groups = append(p.Groups, wire.GroupECP256)
			case "ecp384":
				p.Groups = append(p.Groups, wire.GroupECP384)
			case "modp2048":
				p.Groups = append(p.Groups, wire.GroupMODP2048)
			case "noesn":
			default:
				return nil, fmt.Errorf("%q: unsupported algorithm %q", s, tok)
			}
		}
		if isIKE && len(p.PRF) == 0 {
			for _, i := range p.Integrity {
				p.PRF = append(p.PRF, map[uint16]uint16{
					wire.IntegHMACSHA256128: wire.PRFHMACSHA256,
					wire.IntegHMACSHA384192: wire.PRFHMACSHA384,
					wire.IntegHMACSHA512256: wire.PRFHMACSHA512,
				}[i])
			}
		}
		out = append(out, p)
	}
	return out, nil
}
