package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// SA is the Security Association payload: proposals in preference order.
type SA struct {
	Proposals []Proposal
}

// Proposal is one proposal substructure (RFC 7296 §3.3.1). Num starts at 1;
// Marshal numbers proposals left at zero by position.
type Proposal struct {
	Num        uint8
	Protocol   uint8
	SPI        []byte // empty in an initial IKE_SA_INIT, 8 bytes for IKE rekeys, 4 for ESP
	Transforms []Transform
}

// Transform is one transform substructure (RFC 7296 §3.3.2).
type Transform struct {
	Type       uint8
	ID         uint16
	Attributes []Attribute
}

// Attribute is a transform attribute. TV attributes hold a 2-byte value.
type Attribute struct {
	Type  uint16
	TV    bool
	Value []byte
}

// KeyLength returns the Key Length attribute in bits, or 0 when absent.
func (t Transform) KeyLength() int {
	for _, a := range t.Attributes {
		if a.Type == AttrKeyLength && a.TV && len(a.Value) == 2 {
			return int(binary.BigEndian.Uint16(a.Value))
		}
	}
	return 0
}

// KeyLen returns a Transform attribute list carrying a key length in bits.
func KeyLen(bits int) []Attribute {
	return []Attribute{{Type: AttrKeyLength, TV: true, Value: binary.BigEndian.AppendUint16(nil, uint16(bits))}}
}

// Type implements Payload.
func (*SA) Type() PayloadType { return PayloadSA }

func (s *SA) appendBody(b []byte) ([]byte, error) {
	if len(s.Proposals) == 0 || len(s.Proposals) > 255 {
		return nil, fmt.Errorf("%d proposals", len(s.Proposals))
	}
	for i, p := range s.Proposals {
		start := len(b)
		last := byte(2)
		if i == len(s.Proposals)-1 {
			last = 0
		}
		num := p.Num
		if num == 0 {
			num = uint8(i + 1)
		}
		if len(p.SPI) > 255 || len(p.Transforms) > 255 {
			return nil, errors.New("proposal too large")
		}
		b = append(b, last, 0, 0, 0, num, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms)))
		b = append(b, p.SPI...)
		for j, t := range p.Transforms {
			tstart := len(b)
			tlast := byte(3)
			if j == len(p.Transforms)-1 {
				tlast = 0
			}
			b = append(b, tlast, 0, 0, 0, t.Type, 0)
			b = binary.BigEndian.AppendUint16(b, t.ID)
			for _, a := range t.Attributes {
				if a.TV {
					if len(a.Value) != 2 {
						return nil, errors.New("TV attribute needs 2 bytes")
					}
					b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
					b = append(b, a.Value...)
				} else {
					b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
					b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
					b = append(b, a.Value...)
				}
			}
			binary.BigEndian.PutUint16(b[tstart+2:], uint16(len(b)-tstart))
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	return b, nil
}

func parseSA(b []byte) (*SA, error) {
	s := &SA{}
	for more := true; more; {
		if len(b) < 8 {
			return nil, fmt.Errorf("proposal header: %w", ErrTruncated)
		}
		last, n := b[0], int(binary.BigEndian.Uint16(b[2:]))
		if last != 0 && last != 2 {
			return nil, fmt.Errorf("proposal: last-substruc %d", last)
		}
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("proposal: length %d: %w", n, ErrTruncated)
		}
		p := Proposal{Num: b[4], Protocol: b[5]}
		spiSize, nt := int(b[6]), int(b[7])
		body := b[8:n]
		if len(body) < spiSize {
			return nil, fmt.Errorf("proposal %d: SPI: %w", p.Num, ErrTruncated)
		}
		p.SPI = append([]byte(nil), body[:spiSize]...)
		body = body[spiSize:]
		for i := 0; i < nt; i++ {
			t, rest, err := parseTransform(body, i == nt-1)
			if err != nil {
				return nil, fmt.Errorf("proposal %d transform %d: %w", p.Num, i+1, err)
			}
			p.Transforms = append(p.Transforms, t)
			body = rest
		}
		if len(body) != 0 {
			return nil, fmt.Errorf("proposal %d: %d bytes after transforms", p.Num, len(body))
		}
		s.Proposals = append(s.Proposals, p)
		b = b[n:]
		more = last == 2
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after last proposal", len(b))
	}
	return s, nil
}

func parseTransform(b []byte, wantLast bool) (Transform, []byte, error) {
	var t Transform
	if len(b) < 8 {
		return t, nil, fmt.Errorf("header: %w", ErrTruncated)
	}
	last, n := b[0], int(binary.BigEndian.Uint16(b[2:]))
	if (wantLast && last != 0) || (!wantLast && last != 3) {
		return t, nil, fmt.Errorf("last-substruc %d disagrees with transform count", last)
	}
	if n < 8 || n > len(b) {
		return t, nil, fmt.Errorf("length %d: %w", n, ErrTruncated)
	}
	t.Type, t.ID = b[4], binary.BigEndian.Uint16(b[6:])
	attrs := b[8:n]
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return t, nil, fmt.Errorf("attribute: %w", ErrTruncated)
		}
		typ := binary.BigEndian.Uint16(attrs)
		if typ&0x8000 != 0 {
			t.Attributes = append(t.Attributes, Attribute{Type: typ & 0x7fff, TV: true, Value: append([]byte(nil), attrs[2:4]...)})
			attrs = attrs[4:]
			continue
		}
		l := int(binary.BigEndian.Uint16(attrs[2:]))
		if 4+l > len(attrs) {
			return t, nil, fmt.Errorf("attribute %d: %w", typ, ErrTruncated)
		}
		t.Attributes = append(t.Attributes, Attribute{Type: typ, Value: append([]byte(nil), attrs[4:4+l]...)})
		attrs = attrs[4+l:]
	}
	return t, b[n:], nil
}
