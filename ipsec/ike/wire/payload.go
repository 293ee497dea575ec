package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Payload is one IKE payload. The generic header (next payload, critical
// bit, length) is handled by Marshal and Parse.
type Payload interface {
	Type() PayloadType
	appendBody(b []byte) ([]byte, error)
}

// KE is the Key Exchange payload (RFC 7296 §3.4).
type KE struct {
	Group uint16
	Data  []byte
}

// Nonce is the Nonce payload (RFC 7296 §3.9): 16 to 256 bytes.
type Nonce struct{ Data []byte }

// ID is the IDi or IDr payload (RFC 7296 §3.5).
type ID struct {
	Responder bool // IDr when set, IDi otherwise
	IDType    uint8
	Data      []byte
}

// Auth is the Authentication payload (RFC 7296 §3.8).
type Auth struct {
	Method uint8
	Data   []byte
}

// Notify is the Notify payload (RFC 7296 §3.10).
type Notify struct {
	Protocol   uint8
	NotifyType uint16
	SPI        []byte
	Data       []byte
}

// Delete is the Delete payload (RFC 7296 §3.11). For IKE it has no SPIs.
type Delete struct {
	Protocol uint8
	SPIs     [][]byte
}

// Cert is the Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertReq is the Certificate Request payload (RFC 7296 §3.7).
type CertReq struct {
	Encoding uint8
	Data     []byte
}

// VendorID is the Vendor ID payload (RFC 7296 §3.12).
type VendorID struct{ Data []byte }

// Encrypted is the SK payload (RFC 7296 §3.14): NextPayload is the type of the
// first payload inside, Body is IV ‖ ciphertext ‖ ICV.
type Encrypted struct {
	NextPayload PayloadType
	Body        []byte
}

// Fragment is the SKF payload (RFC 7383 §2.5). NextPayload is non-zero only
// in fragment 1.
type Fragment struct {
	NextPayload PayloadType
	Number      uint16
	Total       uint16
	Body        []byte
}

// Raw is a payload this package does not decode (EAP, unknown types).
type Raw struct {
	PType    PayloadType
	Critical bool
	Data     []byte
}

func (*KE) Type() PayloadType      { return PayloadKE }
func (*Nonce) Type() PayloadType   { return PayloadNonce }
func (*Auth) Type() PayloadType    { return PayloadAUTH }
func (*Notify) Type() PayloadType  { return PayloadN }
func (*Delete) Type() PayloadType  { return PayloadD }
func (*Cert) Type() PayloadType    { return PayloadCERT }
func (*CertReq) Type() PayloadType { return PayloadCERTREQ }
func (*VendorID) Type() PayloadType {
	return PayloadVID
}
func (*Encrypted) Type() PayloadType { return PayloadSK }
func (*Fragment) Type() PayloadType  { return PayloadSKF }
func (r *Raw) Type() PayloadType     { return r.PType }

// Type implements Payload.
func (p *ID) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

func (p *KE) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, p.Group)
	return append(append(b, 0, 0), p.Data...), nil
}
func (p *Nonce) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

// Body returns the ID payload body as used in the AUTH computation: type,
// three reserved bytes, data (RFC 7296 §2.15).
func (p *ID) Body() []byte { b, _ := p.appendBody(nil); return b }

func (p *ID) appendBody(b []byte) ([]byte, error) {
	return append(append(b, p.IDType, 0, 0, 0), p.Data...), nil
}
func (p *Auth) appendBody(b []byte) ([]byte, error) {
	return append(append(b, p.Method, 0, 0, 0), p.Data...), nil
}
func (p *Notify) appendBody(b []byte) ([]byte, error) {
	if len(p.SPI) > 255 {
		return nil, errors.New("SPI too long")
	}
	b = append(b, p.Protocol, byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, p.NotifyType)
	return append(append(b, p.SPI...), p.Data...), nil
}
func (p *Delete) appendBody(b []byte) ([]byte, error) {
	size := 0
	if len(p.SPIs) > 0 {
		size = len(p.SPIs[0])
	}
	b = append(b, p.Protocol, byte(size))
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		if len(s) != size {
			return nil, errors.New("SPIs of different sizes")
		}
		b = append(b, s...)
	}
	return b, nil
}
func (p *Cert) appendBody(b []byte) ([]byte, error) {
	return append(append(b, p.Encoding), p.Data...), nil
}
func (p *CertReq) appendBody(b []byte) ([]byte, error) {
	return append(append(b, p.Encoding), p.Data...), nil
}
func (p *VendorID) appendBody(b []byte) ([]byte, error)  { return append(b, p.Data...), nil }
func (p *Encrypted) appendBody(b []byte) ([]byte, error) { return append(b, p.Body...), nil }
func (p *Fragment) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, p.Number)
	b = binary.BigEndian.AppendUint16(b, p.Total)
	return append(b, p.Body...), nil
}
func (p *Raw) appendBody(b []byte) ([]byte, error) { return append(b, p.Data...), nil }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func parseBody(t PayloadType, b []byte, critical bool) (Payload, error) {
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("body of %d bytes, need %d: %w", len(b), n, ErrTruncated)
		}
		return nil
	}
	switch t {
	case PayloadSA:
		return parseSA(b)
	case PayloadKE:
		if err := need(4); err != nil {
			return nil, err
		}
		return &KE{Group: binary.BigEndian.Uint16(b), Data: clone(b[4:])}, nil
	case PayloadNonce:
		if len(b) < 16 || len(b) > 256 {
			return nil, fmt.Errorf("nonce of %d bytes, want 16..256", len(b))
		}
		return &Nonce{Data: clone(b)}, nil
	case PayloadIDi, PayloadIDr:
		if err := need(4); err != nil {
			return nil, err
		}
		return &ID{Responder: t == PayloadIDr, IDType: b[0], Data: clone(b[4:])}, nil
	case PayloadAUTH:
		if err := need(4); err != nil {
			return nil, err
		}
		return &Auth{Method: b[0], Data: clone(b[4:])}, nil
	case PayloadN:
		if err := need(4); err != nil {
			return nil, err
		}
		spi := int(b[1])
		if err := need(4 + spi); err != nil {
			return nil, err
		}
		return &Notify{Protocol: b[0], NotifyType: binary.BigEndian.Uint16(b[2:]), SPI: clone(b[4 : 4+spi]), Data: clone(b[4+spi:])}, nil
	case PayloadD:
		if err := need(4); err != nil {
			return nil, err
		}
		d := &Delete{Protocol: b[0]}
		size, n := int(b[1]), int(binary.BigEndian.Uint16(b[2:]))
		if len(b)-4 != size*n {
			return nil, fmt.Errorf("%d SPIs of %d bytes in %d bytes", n, size, len(b)-4)
		}
		if size == 0 && n != 0 {
			return nil, errors.New("SPIs of size 0")
		}
		for i := 0; i < n; i++ {
			d.SPIs = append(d.SPIs, clone(b[4+i*size:4+(i+1)*size]))
		}
		return d, nil
	case PayloadTSi, PayloadTSr:
		return parseTS(t == PayloadTSr, b)
	case PayloadCP:
		return parseCP(b)
	case PayloadCERT:
		if err := need(1); err != nil {
			return nil, err
		}
		return &Cert{Encoding: b[0], Data: clone(b[1:])}, nil
	case PayloadCERTREQ:
		if err := need(1); err != nil {
			return nil, err
		}
		return &CertReq{Encoding: b[0], Data: clone(b[1:])}, nil
	case PayloadVID:
		return &VendorID{Data: clone(b)}, nil
	case PayloadSK:
		return &Encrypted{Body: b}, nil
	case PayloadSKF:
		if err := need(4); err != nil {
			return nil, err
		}
		f := &Fragment{Number: binary.BigEndian.Uint16(b), Total: binary.BigEndian.Uint16(b[2:]), Body: b[4:]}
		if f.Number == 0 || f.Total == 0 || f.Number > f.Total {
			return nil, fmt.Errorf("fragment %d of %d", f.Number, f.Total)
		}
		return f, nil
	}
	if critical {
		return nil, &UnsupportedCriticalError{Type: t}
	}
	return &Raw{PType: t, Critical: critical, Data: clone(b)}, nil
}
