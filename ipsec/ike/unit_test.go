package ike

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

func TestSelectProposal(t *testing.T) {
	gcm := wire.Transform{Type: wire.TransformENCR, ID: wire.EncrAESGCM16, Attributes: wire.KeyLen(128)}
	ccm := wire.Transform{Type: wire.TransformENCR, ID: 16, Attributes: wire.KeyLen(128)}
	prf := wire.Transform{Type: wire.TransformPRF, ID: wire.PRFHMACSHA256}
	x25519 := wire.Transform{Type: wire.TransformKE, ID: wire.GroupX25519}
	p256 := wire.Transform{Type: wire.TransformKE, ID: wire.GroupECP256}
	noESN := wire.Transform{Type: wire.TransformESN, ID: wire.ESNNone}
	tests := []struct {
		name    string
		proto   uint8
		props   []wire.Proposal
		ke      uint16
		want    []wire.Transform
		wantErr error
	}{
		{"ike", wire.ProtoIKE, []wire.Proposal{{Num: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{ccm, gcm, prf, x25519, p256}}}, wire.GroupECP256, []wire.Transform{gcm, prf, p256}, nil},
		{"ike wrong KE", wire.ProtoIKE, []wire.Proposal{{Num: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{gcm, prf, x25519}}}, wire.GroupECP256, nil, errInvalidKE{wire.GroupX25519}},
		{"ike nothing", wire.ProtoIKE, []wire.Proposal{{Num: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{ccm, prf, x25519}}}, wire.GroupX25519, nil, errNoProposal},
		{"esp no pfs", wire.ProtoESP, []wire.Proposal{{Num: 2, Protocol: wire.ProtoESP, Transforms: []wire.Transform{gcm, noESN}}}, 0, []wire.Transform{gcm, noESN}, nil},
		{"esp pfs", wire.ProtoESP, []wire.Proposal{{Num: 1, Protocol: wire.ProtoESP, Transforms: []wire.Transform{gcm, x25519, noESN}}}, wire.GroupX25519, []wire.Transform{gcm, x25519, noESN}, nil},
		{"esp wants KE we did not send", wire.ProtoESP, []wire.Proposal{{Num: 1, Protocol: wire.ProtoESP, Transforms: []wire.Transform{gcm, x25519, noESN}}}, 0, nil, errNoProposal},
		{"esp ESN only", wire.ProtoESP, []wire.Proposal{{Num: 1, Protocol: wire.ProtoESP, Transforms: []wire.Transform{gcm, {Type: wire.TransformESN, ID: wire.ESNOn}}}}, 0, nil, errNoProposal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ours := DefaultESPProposals()
			if tc.proto == wire.ProtoIKE {
				ours = DefaultIKEProposals()
			}
			got, _, err := selectProposal(&wire.SA{Proposals: tc.props}, tc.proto, ours, tc.ke)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) && !reflect.DeepEqual(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Transforms, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got.Transforms, err, tc.want)
			}
		})
	}
}

func TestChosenRejects(t *testing.T) {
	offered := DefaultIKEProposals()
	ok := wire.Proposal{Num: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{
		{Type: wire.TransformENCR, ID: wire.EncrAESGCM16, Attributes: wire.KeyLen(256)},
		{Type: wire.TransformPRF, ID: wire.PRFHMACSHA256}, {Type: wire.TransformKE, ID: wire.GroupX25519}}}
	if st, _, err := chosen(&wire.SA{Proposals: []wire.Proposal{ok}}, wire.ProtoIKE, offered, true); err != nil || st.keyBits != 256 || st.group != wire.GroupX25519 {
		t.Fatalf("good choice rejected: %v %+v", err, st)
	}
	mut := func(f func(p *wire.Proposal)) *wire.SA {
		p := ok
		p.Transforms = append([]wire.Transform(nil), ok.Transforms...)
		f(&p)
		return &wire.SA{Proposals: []wire.Proposal{p}}
	}
	bad := map[string]*wire.SA{
		"two proposals":    {Proposals: []wire.Proposal{ok, ok}},
		"unknown number":   mut(func(p *wire.Proposal) { p.Num = 9 }),
		"key size changed": mut(func(p *wire.Proposal) { p.Transforms[0].Attributes = wire.KeyLen(192) }),
		"group not offered": mut(func(p *wire.Proposal) {
			p.Transforms[2].ID = 21
		}),
		"AEAD with integrity": mut(func(p *wire.Proposal) {
			p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformINTEG, ID: wire.IntegHMACSHA256128})
		}),
		"duplicate type": mut(func(p *wire.Proposal) { p.Transforms = append(p.Transforms, p.Transforms[1]) }),
		"no KE":          mut(func(p *wire.Proposal) { p.Transforms = p.Transforms[:2] }),
	}
	for name, sa := range bad {
		if _, _, err := chosen(sa, wire.ProtoIKE, offered, true); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestPrefixes(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		start, end string
		want       []string
	}{
		{"10.200.0.0", "10.200.0.255", []string{"10.200.0.0/24"}},
		{"10.0.0.1", "10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"10.201.0.7", "10.201.0.7", []string{"10.201.0.7/32"}},
		{"fd00::", "fd00::ffff", []string{"fd00::/112"}},
		{"10.0.0.9", "10.0.0.1", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, p := range Prefixes(wire.Selector{StartAddr: a(tc.start), EndAddr: a(tc.end)}) {
			got = append(got, p.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s-%s: %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
	if s := prefixSelector(netip.MustParsePrefix("10.200.0.0/24")); s.EndAddr != a("10.200.0.255") || s.EndPort != 65535 {
		t.Errorf("prefixSelector %+v", s)
	}
}

func TestSignatureAuth(t *testing.T) {
	octets := []byte("RealMessage1 | NonceR | prf(SK_pi, IDi')")
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, k := range map[string]crypto.Signer{"p256": p256, "p384": p384, "rsa": rsaKey, "ed25519": edKey} {
		data, err := signAuth(k, octets)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := verifyAuth(k.Public(), data, octets); err != nil {
			t.Errorf("%s: own signature rejected: %v", name, err)
		}
		if err := verifyAuth(k.Public(), data, append(octets, 0)); err == nil {
			t.Errorf("%s: signature over other octets accepted", name)
		}
		if err := verifyAuth(p384.Public(), data, octets); err == nil && name != "p384" {
			t.Errorf("%s: verified with the wrong key", name)
		}
		if err := verifyAuth(k.Public(), data[:3], octets); err == nil {
			t.Errorf("%s: truncated AUTH accepted", name)
		}
	}
	// RSASSA-PSS as strongSwan sends it with rsa_pss = yes.
	h := crypto.SHA256.New()
	h.Write(octets)
	sig, err := rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, h.Sum(nil), &rsa.PSSOptions{SaltLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	type params struct {
		Hash algorithmIdentifier `asn1:"explicit,tag:0"`
		MGF  algorithmIdentifier `asn1:"explicit,tag:1"`
		Salt int                 `asn1:"explicit,tag:2"`
	}
	mgfParams, _ := asn1.Marshal(algorithmIdentifier{Algorithm: oidSHA256})
	pder, err := asn1.Marshal(params{
		Hash: algorithmIdentifier{Algorithm: oidSHA256},
		MGF:  algorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}, Parameters: asn1.RawValue{FullBytes: mgfParams}},
		Salt: 32,
	})
	if err != nil {
		t.Fatal(err)
	}
	alg, _ := asn1.Marshal(algorithmIdentifier{Algorithm: oidRSAPSS, Parameters: asn1.RawValue{FullBytes: pder}})
	if err := verifyAuth(rsaKey.Public(), append(append([]byte{byte(len(alg))}, alg...), sig...), octets); err != nil {
		t.Fatalf("RSA-PSS: %v", err)
	}
}

// fakeConn records what the session sends.
type fakeConn struct{ sent chan []byte }

func (c *fakeConn) Send(b []byte) error { c.sent <- append([]byte(nil), b...); return nil }
func (c *fakeConn) Receive(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

type fakeKeyer struct{ deleted []uint32 }

func (k *fakeKeyer) AddChild(ChildSA) error     { return nil }
func (k *fakeKeyer) ActivateChild(uint32) error { return nil }
func (k *fakeKeyer) DeleteChild(spi uint32)     { k.deleted = append(k.deleted, spi) }
func (k *fakeKeyer) count() int                 { return len(k.deleted) }
func (k *fakeKeyer) has(spi uint32) bool        { return len(k.deleted) > 0 && k.deleted[0] == spi }

// testSession is a session with an established IKE SA whose gateway side is
// played by gwOut (gateway → us) and gwIn (us → gateway).
func testSession(t testing.TB) (s *Session, conn *fakeConn, k *fakeKeyer, gwOut, gwIn skCipher) {
	cs := testCiphers(t)["gcm128"]
	cs2 := testCiphers(t)["chacha"]
	conn = &fakeConn{sent: make(chan []byte, 16)}
	k = &fakeKeyer{}
	s = &Session{
		cfg:  Config{RetransmitTimeout: 10 * time.Millisecond, RetransmitTries: 3, FragmentSize: 1248},
		conn: conn, keyer: k, log: slog.New(slog.DiscardHandler), rand: rand.Reader,
		in: make(chan []byte, 8), children: map[uint32]*child{},
		ike: &ikeSA{spiI: 1, spiR: 2, weInit: true, keys: &ikeKeys{in: cs[0], out: cs2[0]}},
	}
	return s, conn, k, cs[1], cs2[1]
}

// TestResponderCachesResponse: a retransmitted gateway request gets the
// identical cached response without being processed again (RFC 7296 §2.1),
// and a DELETE of a CHILD_SA is answered with our SPI of the pair.
func TestResponderCachesResponse(t *testing.T) {
	s, conn, k, gwOut, gwIn := testSession(t)
	s.children[0x1111] = &child{sa: ChildSA{InSPI: 0x1111, OutSPI: 0x2222}}
	gwHeader := wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.Informational}
	req, _ := sealMessage(gwHeader, []wire.Payload{&wire.Delete{Protocol: wire.ProtoESP, SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, 0x2222)}}}, gwOut)
	if err := s.inbound(req); err != nil {
		t.Fatal(err)
	}
	resp := <-conn.sent
	m, err := wire.Parse(resp)
	if err != nil || !m.IsResponse() || m.MessageID != 0 || m.Flags&wire.FlagInitiator == 0 {
		t.Fatalf("response header %+v, %v", m, err)
	}
	ps, err := openMessage(resp, m, gwIn)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := ps[0].(*wire.Delete)
	if !ok || binary.BigEndian.Uint32(d.SPIs[0]) != 0x1111 || !k.has(0x1111) {
		t.Fatalf("DELETE answered with %#v, keyer %v", ps, k.deleted)
	}
	if err := s.inbound(req); err != nil {
		t.Fatal(err)
	}
	if again := <-conn.sent; !bytes.Equal(again, resp) || k.count() != 1 {
		t.Fatal("retransmitted request was processed again or answered differently")
	}
	// A DPD probe (message ID 1) gets an empty response.
	gwHeader.MessageID = 1
	probe, _ := sealMessage(gwHeader, nil, gwOut)
	if err := s.inbound(probe); err != nil {
		t.Fatal(err)
	}
	resp = <-conn.sent
	m, _ = wire.Parse(resp)
	if ps, err := openMessage(resp, m, gwIn); err != nil || len(ps) != 0 || m.MessageID != 1 {
		t.Fatalf("DPD answer %v %v", ps, err)
	}
	// Out-of-window and replayed-old requests are dropped.
	gwHeader.MessageID = 5
	far, _ := sealMessage(gwHeader, nil, gwOut)
	if err := s.inbound(far); err == nil {
		t.Fatal("request far ahead of the window accepted")
	}
}

// TestRetransmitIdentical: our request is resent byte for byte with backoff
// and the exchange fails after the configured tries.
func TestRetransmitIdentical(t *testing.T) {
	s, conn, _, _, _ := testSession(t)
	err := s.informational(context.Background(), nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
	first := <-conn.sent
	for i := 1; i < 3; i++ {
		if b := <-conn.sent; !bytes.Equal(b, first) {
			t.Fatalf("retransmission %d differs", i)
		}
	}
	select {
	case <-conn.sent:
		t.Fatal("more than RetransmitTries sends")
	default:
	}
	if s.ike.nextOut != 1 {
		t.Fatalf("nextOut %d", s.ike.nextOut)
	}
}

// TestFragmentsRoundTrip: a message split into SKF fragments reassembles
// whatever the arrival order, duplicates included.
func TestFragmentsRoundTrip(t *testing.T) {
	s, _, _, _, _ := testSession(t)
	s.cfg.FragmentSize = 100
	s.ike.frag = true
	payloads := []wire.Payload{&wire.ID{IDType: wire.IDFQDN, Data: bytes.Repeat([]byte("a"), 150)}, &wire.Nonce{Data: make([]byte, 64)}}
	h := wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.IKEAuth, MessageID: 1, Flags: wire.FlagInitiator}
	frags, err := s.seal(s.ike, h, payloads)
	if err != nil || len(frags) < 3 {
		t.Fatalf("%d fragments, %v", len(frags), err)
	}
	// Open them with a receiver whose inbound cipher matches our outbound.
	r, _, _, _, _ := testSession(t)
	r.ike.frag = true
	r.ike.keys.in = testCiphers(t)["chacha"][1]
	order := []int{len(frags) - 1, 0, 0}
	for i := 1; i < len(frags)-1; i++ {
		order = append(order, i)
	}
	var got []wire.Payload
	for n, i := range order {
		if len(frags[i]) > 100 {
			t.Fatalf("fragment of %d bytes", len(frags[i]))
		}
		m, err := wire.Parse(frags[i])
		if err != nil {
			t.Fatal(err)
		}
		ps, complete, err := r.open(r.ike, frags[i], m)
		if err != nil {
			t.Fatal(err)
		}
		if complete != (n == len(order)-1) {
			t.Fatalf("complete=%v after %d of %d", complete, n+1, len(order))
		}
		got = ps
	}
	if !reflect.DeepEqual(got, payloads) {
		t.Fatalf("reassembled %#v", got)
	}
}

// FuzzInbound feeds arbitrary messages to the session's request handling
// with an established IKE SA: errors, never panics.
func FuzzInbound(f *testing.F) {
	s, _, _, gwOut, _ := testSession(f)
	h := wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.Informational}
	for i, ps := range [][]wire.Payload{nil, {&wire.Delete{Protocol: wire.ProtoIKE}}, {&wire.Notify{NotifyType: wire.NotifyRekeySA}, &wire.SA{Proposals: []wire.Proposal{{Protocol: wire.ProtoESP}}}}} {
		h.MessageID = uint32(i)
		b, _ := sealMessage(h, ps, gwOut)
		f.Add(b)
	}
	empty, _ := (&wire.Message{Header: wire.Header{SPIi: 1, SPIr: 2, Exchange: wire.Informational, MessageID: 0}}).Marshal()
	f.Add(empty)
	in0 := s.ike.keys.in
	f.Fuzz(func(t *testing.T, in []byte) {
		s, conn, _, _, _ := testSession(t)
		s.ike.keys.in = in0 // the seeds decrypt, mutations mostly do not
		go func() {
			for range conn.sent {
			}
		}()
		s.inbound(in)
		s.inbound(in)
		close(conn.sent)
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Local: FQDN("a.example"), PSK: []byte("x"), RemoteAddr: netip.MustParseAddrPort("192.0.2.2:4500")}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(c *Config){
		"no PSK":           func(c *Config) { c.PSK = nil },
		"no identity":      func(c *Config) { c.Local = Identity{} },
		"no gateway":       func(c *Config) { c.RemoteAddr = netip.AddrPort{} },
		"cert without key": func(c *Config) { c.Certificate = [][]byte{{1}} },
		"bad proposal": func(c *Config) {
			c.IKEProposals = []Proposal{{Encryption: []Encryption{{wire.EncrAESCBC, 128}}, PRF: []uint16{wire.PRFHMACSHA256}, Groups: []uint16{wire.GroupX25519}}}
		},
		"bad group": func(c *Config) {
			c.IKEProposals = DefaultIKEProposals()
			c.IKEProposals[0].Groups = []uint16{2}
		},
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
