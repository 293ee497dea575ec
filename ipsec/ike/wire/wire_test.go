package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func sampleMessage() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, Exchange: IKESAInit, Flags: FlagInitiator, MessageID: 0},
		Payloads: []Payload{
			&Notify{NotifyType: NotifyCookie, Data: []byte("cookie-cookie")},
			&SA{Proposals: []Proposal{
				{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: EncrAESGCM16, Attributes: KeyLen(256)},
					{Type: TransformPRF, ID: PRFHMACSHA256},
					{Type: TransformKE, ID: GroupX25519},
				}},
				{Num: 2, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Transforms: []Transform{
					{Type: TransformENCR, ID: EncrChaCha20Poly1305},
					{Type: TransformESN, ID: ESNNone, Attributes: []Attribute{{Type: 99, Value: []byte("tlv")}}},
				}},
			}},
			&KE{Group: GroupX25519, Data: bytes.Repeat([]byte{9}, 32)},
			&Nonce{Data: bytes.Repeat([]byte{7}, 32)},
			&ID{IDType: IDFQDN, Data: []byte("resolver.example")},
			&ID{Responder: true, IDType: IDKeyID, Data: []byte{1, 2}},
			&Auth{Method: AuthPSK, Data: []byte{1, 2, 3}},
			&Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
			&Delete{Protocol: ProtoIKE},
			&TS{Selectors: []Selector{
				{StartAddr: netip.MustParseAddr("10.0.0.0"), EndAddr: netip.MustParseAddr("10.0.0.255"), EndPort: 65535},
				{IPProto: 17, StartPort: 53, EndPort: 53, StartAddr: netip.MustParseAddr("::"), EndAddr: netip.MustParseAddr("ffff::")},
			}},
			&TS{Responder: true, Selectors: []Selector{{StartAddr: netip.MustParseAddr("0.0.0.0"), EndAddr: netip.MustParseAddr("255.255.255.255"), EndPort: 65535}}},
			&CP{CFGType: CFGRequest, Attributes: []CPAttribute{{Type: CPInternalIP4Address}, {Type: CPInternalIP4DNS, Value: []byte{10, 0, 0, 1}}}},
			&Cert{Encoding: CertX509Signature, Data: []byte("der")},
			&CertReq{Encoding: CertX509Signature, Data: bytes.Repeat([]byte{1}, 20)},
			&VendorID{Data: []byte("lamina")},
			&Raw{PType: 99, Data: []byte("unknown")},
			&Encrypted{NextPayload: PayloadIDi, Body: []byte("iv-ciphertext-icv")},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sampleMessage()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %#v\nwant %#v", got, m)
	}
	b2, err := got.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-marshal differs: %v", err)
	}
	if !got.IsResponse() && got.Payloads[1].(*SA).Proposals[0].Transforms[0].KeyLength() != 256 {
		t.Fatal("key length lost")
	}
}

func TestFragmentRoundTrip(t *testing.T) {
	m := &Message{Header: Header{Exchange: IKEAuth, MessageID: 1}, Payloads: []Payload{&Fragment{NextPayload: PayloadIDi, Number: 1, Total: 3, Body: []byte("x")}}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("got %#v, %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	good, err := sampleMessage().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	crit := (&Message{Payloads: []Payload{&Raw{PType: 99, Critical: true, Data: []byte{1}}}})
	critBytes, _ := crit.Marshal()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"short", good[:10], "truncated"},
		{"version", mutate(func(b []byte) []byte { b[17] = 0x10; return b }), "major version"},
		{"length", good[:len(good)-1], "length field"},
		{"payload length", mutate(func(b []byte) []byte { b[HeaderLen+2] = 0xff; return b }), "N payload"},
		{"tiny payload length", mutate(func(b []byte) []byte { b[HeaderLen+2], b[HeaderLen+3] = 0, 2; return b }), "length 2"},
		{"critical", critBytes, "unsupported critical"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	var uc *UnsupportedCriticalError
	if _, err := Parse(critBytes); !errors.As(err, &uc) || uc.Type != 99 {
		t.Fatalf("err = %v", err)
	}
}

func TestSKMustBeLast(t *testing.T) {
	m := &Message{Payloads: []Payload{&Encrypted{}, &Nonce{Data: make([]byte, 16)}}}
	if _, err := m.Marshal(); err == nil {
		t.Fatal("SK not last accepted")
	}
}

// FuzzIKEMessage checks that Parse never panics and that whatever it accepts
// survives Marshal and a second Parse unchanged.
func FuzzIKEMessage(f *testing.F) {
	b, _ := sampleMessage().Marshal()
	f.Add(b)
	m := &Message{Header: Header{Exchange: IKEAuth}, Payloads: []Payload{&Fragment{NextPayload: PayloadIDi, Number: 1, Total: 1, Body: []byte("x")}}}
	b, _ = m.Marshal()
	f.Add(b)
	f.Add(make([]byte, HeaderLen))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			return // e.g. a Nonce accepted but an empty SA: marshal refuses
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of marshalled message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs")
		}
	})
}
