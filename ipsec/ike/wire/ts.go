package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// TS is the TSi or TSr payload (RFC 7296 §3.13).
type TS struct {
	Responder bool // TSr when set
	Selectors []Selector
}

// Selector is one traffic selector: an address range, an IP protocol (0 =
// any) and a port range (0–65535 = any).
type Selector struct {
	IPProto            uint8
	StartPort, EndPort uint16
	StartAddr, EndAddr netip.Addr
}

// Type implements Payload.
func (p *TS) Type() PayloadType {
	if p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

func (p *TS) appendBody(b []byte) ([]byte, error) {
	if len(p.Selectors) == 0 || len(p.Selectors) > 255 {
		return nil, fmt.Errorf("%d selectors", len(p.Selectors))
	}
	b = append(b, byte(len(p.Selectors)), 0, 0, 0)
	for _, s := range p.Selectors {
		if s.StartAddr.Is4() != s.EndAddr.Is4() || !s.StartAddr.IsValid() || !s.EndAddr.IsValid() {
			return nil, errors.New("selector addresses of mixed or invalid family")
		}
		typ, n := TSIPv6Range, 40
		if s.StartAddr.Is4() {
			typ, n = TSIPv4Range, 16
		}
		b = append(b, typ, s.IPProto)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = binary.BigEndian.AppendUint16(b, s.StartPort)
		b = binary.BigEndian.AppendUint16(b, s.EndPort)
		b = append(b, s.StartAddr.AsSlice()...)
		b = append(b, s.EndAddr.AsSlice()...)
	}
	return b, nil
}

func parseTS(resp bool, b []byte) (*TS, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	n := int(b[0])
	if n == 0 {
		return nil, errors.New("no selectors")
	}
	p := &TS{Responder: resp}
	b = b[4:]
	for i := 0; i < n; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("selector %d: %w", i+1, ErrTruncated)
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		var alen int
		switch b[0] {
		case TSIPv4Range:
			alen = 4
		case TSIPv6Range:
			alen = 16
		default:
			return nil, fmt.Errorf("selector %d: type %d", i+1, b[0])
		}
		if l != 8+2*alen || l > len(b) {
			return nil, fmt.Errorf("selector %d: length %d: %w", i+1, l, ErrTruncated)
		}
		s := Selector{IPProto: b[1], StartPort: binary.BigEndian.Uint16(b[4:]), EndPort: binary.BigEndian.Uint16(b[6:])}
		s.StartAddr, _ = netip.AddrFromSlice(b[8 : 8+alen])
		s.EndAddr, _ = netip.AddrFromSlice(b[8+alen : 8+2*alen])
		p.Selectors = append(p.Selectors, s)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after selectors", len(b))
	}
	return p, nil
}

// CP is the Configuration payload (RFC 7296 §3.15).
type CP struct {
	CFGType    uint8
	Attributes []CPAttribute
}

// CPAttribute is one configuration attribute; Value may be empty in a request.
type CPAttribute struct {
	Type  uint16
	Value []byte
}

// Type implements Payload.
func (*CP) Type() PayloadType { return PayloadCP }

func (p *CP) appendBody(b []byte) ([]byte, error) {
	b = append(b, p.CFGType, 0, 0, 0)
	for _, a := range p.Attributes {
		b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}

func parseCP(b []byte) (*CP, error) {
	if len(b) < 4 {
		return nil, ErrTruncated
	}
	p := &CP{CFGType: b[0]}
	b = b[4:]
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("attribute: %w", ErrTruncated)
		}
		t, l := binary.BigEndian.Uint16(b)&0x7fff, int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return nil, fmt.Errorf("attribute %d: %w", t, ErrTruncated)
		}
		p.Attributes = append(p.Attributes, CPAttribute{Type: t, Value: clone(b[4 : 4+l])})
		b = b[4+l:]
	}
	return p, nil
}
