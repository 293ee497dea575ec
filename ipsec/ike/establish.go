package ike

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// keyPad is the PSK pad string of RFC 7296 §2.15 (17 bytes, no NUL).
const keyPad = "Key Pad for IKEv2"

// natHash is a NAT_DETECTION_*_IP value (RFC 7296 §2.23).
func natHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	binary.Write(h, binary.BigEndian, spii)
	binary.Write(h, binary.BigEndian, spir)
	h.Write(ap.Addr().AsSlice())
	binary.Write(h, binary.BigEndian, ap.Port())
	return h.Sum(nil)
}

// initResult is what a successful IKE_SA_INIT leaves for IKE_AUTH.
type initResult struct {
	req, resp []byte // RealMessage1 and RealMessage2 for AUTH
	ni, nr    []byte
}

// establish runs IKE_SA_INIT (with INVALID_KE and COOKIE retries) and
// IKE_AUTH.
func (s *Session) establish(ctx context.Context) error {
	s.ike = &ikeSA{spiI: s.newSPI64(), weInit: true}
	ir, err := s.ikeSAInit(ctx)
	if err != nil {
		return err
	}
	return s.ikeAuth(ctx, ir)
}

func (s *Session) ikeSAInit(ctx context.Context) (*initResult, error) {
	group := s.cfg.IKEProposals[0].Groups[0]
	if s.offersGroup(s.cfg.Group) {
		group = s.cfg.Group
	}
	var cookie []byte
	ni := s.nonce()
	for attempt := 0; attempt < 4; attempt++ {
		k, err := newKex(group, s.rand)
		if err != nil {
			return nil, err
		}
		var ps []wire.Payload
		if cookie != nil {
			ps = append(ps, &wire.Notify{NotifyType: wire.NotifyCookie, Data: cookie})
		}
		// A source hash over a random address makes the gateway see a NAT
		// and encapsulate ESP in UDP, which is all we can send.
		fake := make([]byte, 4)
		io.ReadFull(s.rand, fake)
		fakeSrc := netip.AddrPortFrom(netip.AddrFrom4([4]byte(fake)), s.cfg.LocalAddr.Port())
		ps = append(ps,
			saPayload(wire.ProtoIKE, nil, s.cfg.IKEProposals, true),
			&wire.KE{Group: group, Data: k.public()},
			&wire.Nonce{Data: ni},
			&wire.Notify{NotifyType: wire.NotifyNATDSourceIP, Data: natHash(s.ike.spiI, 0, fakeSrc)},
			&wire.Notify{NotifyType: wire.NotifyNATDDestinationIP, Data: natHash(s.ike.spiI, 0, s.cfg.RemoteAddr)},
			&wire.Notify{NotifyType: wire.NotifyFragmentationOK},
		)
		if len(s.cfg.Certificate) > 0 || len(s.cfg.RootCAs) > 0 {
			ps = append(ps, &wire.Notify{NotifyType: wire.NotifySignatureHashAlgos, Data: signatureHashes})
		}
		m := &wire.Message{Header: s.header(wire.IKESAInit, 0, false), Payloads: ps}
		req, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		r, err := s.roundTrip(ctx, s.ike, [][]byte{req}, wire.IKESAInit, 0, false)
		if err != nil {
			return nil, fmt.Errorf("IKE_SA_INIT: %w", err)
		}
		if n := findNotify(r.payloads, wire.NotifyCookie); n != nil {
			if len(n.Data) < 1 || len(n.Data) > 64 {
				return nil, errors.New("ike: COOKIE of bad length")
			}
			cookie = n.Data
			s.log.Debug("gateway demands a cookie")
			continue
		}
		if n := findNotify(r.payloads, wire.NotifyInvalidKEPayload); n != nil {
			if len(n.Data) != 2 {
				return nil, errors.New("ike: INVALID_KE_PAYLOAD without a group")
			}
			want := binary.BigEndian.Uint16(n.Data)
			if want == group || !s.offersGroup(want) {
				return nil, fmt.Errorf("ike: gateway asks for KE group %d, which we do not offer", want)
			}
			s.log.Debug("gateway asks for another KE group", "group", want)
			group = want
			continue
		}
		if err := notifyError(r.payloads, "IKE_SA_INIT"); err != nil {
			return nil, err
		}
		return s.finishInit(r, k, req, ni)
	}
	return nil, errors.New("ike: IKE_SA_INIT: too many retries")
}

func (s *Session) offersGroup(g uint16) bool {
	for _, p := range s.cfg.IKEProposals {
		if slices.Contains(p.Groups, g) {
			return true
		}
	}
	return false
}

func (s *Session) finishInit(r *response, k kex, req, ni []byte) (*initResult, error) {
	var sa *wire.SA
	var ke *wire.KE
	var nr []byte
	for _, p := range r.payloads {
		switch q := p.(type) {
		case *wire.SA:
			sa = q
		case *wire.KE:
			ke = q
		case *wire.Nonce:
			nr = q.Data
		}
	}
	if sa == nil || ke == nil || nr == nil || r.msg.SPIr == 0 {
		return nil, errors.New("ike: IKE_SA_INIT response lacks SA, KE, Nonce or SPIr")
	}
	st, _, err := chosen(sa, wire.ProtoIKE, s.cfg.IKEProposals, true)
	if err != nil {
		return nil, err
	}
	if st.group != k.group() || ke.Group != k.group() {
		return nil, fmt.Errorf("ike: gateway chose group %d but sent KE %d for our %d", st.group, ke.Group, k.group())
	}
	gir, err := k.shared(ke.Data)
	if err != nil {
		return nil, err
	}
	s.ike.spiR = r.msg.SPIr
	s.ike.suite = st
	s.ike.frag = findNotify(r.payloads, wire.NotifyFragmentationOK) != nil
	p, _ := newPRF(st.prf)
	skeyseed := p.sum(append(append([]byte(nil), ni...), nr...), gir)
	if s.ike.keys, err = deriveIKE(st, skeyseed, ni, nr, s.ike.spiI, s.ike.spiR, true, s.rand); err != nil {
		return nil, err
	}
	s.ike.nextOut = 1
	s.ike.rekeyAt = jitter(s.cfg.IKERekey)
	s.mu.Lock()
	s.info.Group = st.group
	s.mu.Unlock()
	s.log.Debug("IKE_SA_INIT done", "group", st.group, "encr", st.encr, "prf", st.prf)
	return &initResult{req: req, resp: r.raw, ni: ni, nr: nr}, nil
}

// pskAuth is AUTH for a PSK (RFC 7296 §2.15): prf(prf(PSK, pad),
// message ‖ nonce ‖ prf(SK_p, ID')).
func pskAuth(p prf, psk, msg, nonce, skp, idBody []byte) []byte {
	return p.sum(p.sum(psk, []byte(keyPad)), msg, nonce, p.sum(skp, idBody))
}

// wantIPv6 reports whether any remote network is IPv6: then we also ask
// for an IPv6 virtual IP and propose IPv6 selectors.
func (s *Session) wantIPv6() bool {
	for _, n := range s.cfg.RemoteNets {
		if n.Addr().Is6() && !n.Addr().Is4In6() {
			return true
		}
	}
	return false
}

func (s *Session) trafficSelectors() (tsi, tsr *wire.TS) {
	tsi = &wire.TS{}
	if s.cfg.InnerAddress.IsValid() {
		a := s.cfg.InnerAddress
		tsi.Selectors = []wire.Selector{{StartAddr: a, EndAddr: a, EndPort: 65535}}
	} else {
		// The gateway narrows these to the virtual IPs it assigns.
		tsi.Selectors = []wire.Selector{anySelector(false)}
		if s.wantIPv6() {
			tsi.Selectors = append(tsi.Selectors, anySelector(true))
		}
	}
	tsr = &wire.TS{Responder: true}
	for _, n := range s.cfg.RemoteNets {
		tsr.Selectors = append(tsr.Selectors, prefixSelector(n))
	}
	if len(tsr.Selectors) == 0 {
		tsr.Selectors = []wire.Selector{anySelector(false)}
	}
	return tsi, tsr
}

func (s *Session) ikeAuth(ctx context.Context, ir *initResult) error {
	id := &wire.ID{IDType: s.cfg.Local.Type, Data: s.cfg.Local.Value}
	ps := []wire.Payload{id}
	for _, der := range s.cfg.Certificate {
		ps = append(ps, &wire.Cert{Encoding: wire.CertX509Signature, Data: der})
	}
	if s.cfg.InitialContact {
		ps = append(ps, &wire.Notify{NotifyType: wire.NotifyInitialContact})
	}
	if len(s.cfg.RootCAs) > 0 {
		ps = append(ps, &wire.CertReq{Encoding: wire.CertX509Signature, Data: certReq(s.cfg.RootCAs)})
	}
	if len(s.cfg.Remote.Value) > 0 {
		ps = append(ps, &wire.ID{Responder: true, IDType: s.cfg.Remote.Type, Data: s.cfg.Remote.Value})
	}
	k := s.ike.keys
	// RFC 7296 §2.15: we sign (or MAC) RealMessage1 ‖ NonceR ‖ prf(SK_pi, IDi').
	if len(s.cfg.Certificate) > 0 {
		octets := append(append(append([]byte(nil), ir.req...), ir.nr...), k.prf.sum(k.pLocal, id.Body())...)
		sig, err := signAuth(s.cfg.PrivateKey, octets)
		if err != nil {
			return err
		}
		ps = append(ps, &wire.Auth{Method: wire.AuthSignature, Data: sig})
	} else {
		ps = append(ps, &wire.Auth{Method: wire.AuthPSK, Data: pskAuth(k.prf, s.cfg.PSK, ir.req, ir.nr, k.pLocal, id.Body())})
	}
	if !s.cfg.InnerAddress.IsValid() {
		cp := &wire.CP{CFGType: wire.CFGRequest, Attributes: []wire.CPAttribute{
			{Type: wire.CPInternalIP4Address}, {Type: wire.CPInternalIP4DNS},
		}}
		if s.wantIPv6() {
			cp.Attributes = append(cp.Attributes, wire.CPAttribute{Type: wire.CPInternalIP6Address}, wire.CPAttribute{Type: wire.CPInternalIP6DNS})
		}
		ps = append(ps, cp)
	}
	inSPI := s.newSPI32()
	tsi, tsr := s.trafficSelectors()
	ps = append(ps, saPayload(wire.ProtoESP, binary.BigEndian.AppendUint32(nil, inSPI), s.cfg.ESPProposals, false), tsi, tsr)
	r, err := s.request(ctx, wire.IKEAuth, ps)
	if err != nil {
		return fmt.Errorf("IKE_AUTH: %w", err)
	}
	if n := findNotify(r.payloads, wire.NotifyAuthenticationFailed); n != nil {
		return fmt.Errorf("%w: %w", ErrAuth, &NotifyError{Type: n.NotifyType, Exchange: "IKE_AUTH"})
	}
	var idr *wire.ID
	var auth *wire.Auth
	var certs [][]byte
	for _, p := range r.payloads {
		switch q := p.(type) {
		case *wire.ID:
			if q.Responder {
				idr = q
			}
		case *wire.Auth:
			auth = q
		case *wire.Cert:
			if q.Encoding == wire.CertX509Signature {
				certs = append(certs, q.Data)
			}
		}
	}
	if idr == nil || auth == nil {
		if err := notifyError(r.payloads, "IKE_AUTH"); err != nil {
			return err
		}
		return errors.New("ike: IKE_AUTH response lacks IDr or AUTH")
	}
	if len(s.cfg.RootCAs) > 0 {
		if auth.Method != wire.AuthSignature {
			return fmt.Errorf("%w: gateway used auth method %d, want a digital signature (14)", ErrAuth, auth.Method)
		}
		leaf, err := verifyPeer(certs, s.cfg.RootCAs, idr, time.Now())
		if err != nil {
			return err
		}
		octets := append(append(append([]byte(nil), ir.resp...), ir.ni...), k.prf.sum(k.pRemote, idr.Body())...)
		if err := verifyAuth(leaf.PublicKey, auth.Data, octets); err != nil {
			return fmt.Errorf("%w: %w", ErrAuth, err)
		}
	} else {
		if auth.Method != wire.AuthPSK {
			return fmt.Errorf("%w: gateway used auth method %d, want PSK", ErrAuth, auth.Method)
		}
		want := pskAuth(k.prf, s.cfg.PSK, ir.resp, ir.ni, k.pRemote, idr.Body())
		if !hmac.Equal(want, auth.Data) {
			return fmt.Errorf("%w: AUTH payload does not verify", ErrAuth)
		}
	}
	if len(s.cfg.Remote.Value) > 0 && (idr.IDType != s.cfg.Remote.Type || !bytes.Equal(idr.Data, s.cfg.Remote.Value)) {
		return fmt.Errorf("%w: gateway identity %q, want %q", ErrAuth, idr.Data, s.cfg.Remote.Value)
	}
	s.lastRecvNow()
	s.log.Info("IKE SA established", "remote_id", Identity{idr.IDType, idr.Data}.String())
	// The IKE SA is up; a CHILD_SA failure is reported by notifies, and
	// leaves an IKE SA we have no use for: delete it at the gateway.
	err = notifyError(r.payloads, "IKE_AUTH")
	var c *child
	if err == nil {
		c, err = s.childFromResponse(r.payloads, inSPI, s.cfg.ESPProposals, false, nil, ir.ni, ir.nr)
	}
	if err != nil {
		if derr := s.deleteIKE(ctx); derr != nil {
			s.log.Debug("deleting IKE SA after CHILD_SA failure", "err", derr)
		}
		return err
	}
	s.mu.Lock()
	s.info.Local, s.info.Remote = c.sa.Local, c.sa.Remote
	for _, p := range r.payloads {
		if cp, ok := p.(*wire.CP); ok && cp.CFGType == wire.CFGReply {
			for _, a := range cp.Attributes {
				addr, ok := netip.AddrFromSlice(a.Value)
				switch {
				case !ok && len(a.Value) == 17: // INTERNAL_IP6_ADDRESS: address ‖ prefix length
					addr, ok = netip.AddrFromSlice(a.Value[:16])
				}
				if !ok {
					continue
				}
				switch a.Type {
				case wire.CPInternalIP4Address, wire.CPInternalIP6Address:
					s.info.VirtualIPs = append(s.info.VirtualIPs, addr)
				case wire.CPInternalIP4DNS, wire.CPInternalIP6DNS:
					s.info.DNS = append(s.info.DNS, addr)
				}
			}
		}
	}
	s.mu.Unlock()
	c.rekeyAt = s.rekeyTime()
	return s.install(c)
}

// childFromResponse builds the CHILD_SA the gateway accepted in ps (SA, TSi,
// TSr), with keys from KEYMAT where we initiated the exchange.
func (s *Session) childFromResponse(ps []wire.Payload, inSPI uint32, offered []Proposal, pfs bool, gir, ni, nr []byte) (*child, error) {
	var sa *wire.SA
	var tsi, tsr *wire.TS
	for _, p := range ps {
		switch q := p.(type) {
		case *wire.SA:
			sa = q
		case *wire.TS:
			if q.Responder {
				tsr = q
			} else {
				tsi = q
			}
		}
	}
	if sa == nil || tsi == nil || tsr == nil {
		return nil, errors.New("ike: CHILD_SA response lacks SA, TSi or TSr")
	}
	st, spi, err := chosen(sa, wire.ProtoESP, offered, pfs)
	if err != nil {
		return nil, err
	}
	if len(spi) != 4 {
		return nil, fmt.Errorf("ike: ESP SPI of %d bytes", len(spi))
	}
	km, err := deriveChild(s.ike.keys.prf, s.ike.keys.d, gir, ni, nr, st)
	if err != nil {
		return nil, err
	}
	bits := st.keyBits
	if st.encr == wire.EncrChaCha20Poly1305 {
		bits = 256
	}
	return &child{suite: st, sa: ChildSA{
		InSPI: inSPI, OutSPI: binary.BigEndian.Uint32(spi),
		Cipher: st.encr, KeyBits: bits, Integ: st.integ,
		OutKey: km.encrI, OutInteg: km.integI, InKey: km.encrR, InInteg: km.integR,
		ESN: st.esn, Local: tsi.Selectors, Remote: tsr.Selectors,
	}}, nil
}

func (s *Session) install(c *child) error {
	if err := s.keyer.AddChild(c.sa); err != nil {
		return fmt.Errorf("ike: installing CHILD_SA: %w", err)
	}
	s.children[c.sa.InSPI] = c
	s.log.Info("CHILD_SA installed", "in_spi", fmt.Sprintf("%08x", c.sa.InSPI), "out_spi", fmt.Sprintf("%08x", c.sa.OutSPI), "encr", c.sa.Cipher)
	return nil
}
