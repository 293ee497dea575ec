package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the size of the fixed IKE header.
const HeaderLen = 28

// MaxMessageLen bounds what Parse accepts; IKE messages over UDP cannot be
// larger than a datagram.
const MaxMessageLen = 65535

// ErrTruncated reports input shorter than a length field claims.
var ErrTruncated = errors.New("wire: truncated")

// Header is the fixed IKE header (RFC 7296 §3.1). Length is filled in by
// Marshal and checked by Parse.
type Header struct {
	SPIi, SPIr  uint64
	NextPayload PayloadType
	Version     uint8 // 0x20 for IKEv2; zero is marshalled as 0x20
	Exchange    uint8
	Flags       uint8
	MessageID   uint32
	Length      uint32
}

// IsResponse reports whether the Response flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// ParseHeader decodes the fixed header of b without looking at payloads.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, fmt.Errorf("wire: header: %d bytes, need %d: %w", len(b), HeaderLen, ErrTruncated)
	}
	h.SPIi = binary.BigEndian.Uint64(b[0:])
	h.SPIr = binary.BigEndian.Uint64(b[8:])
	h.NextPayload = PayloadType(b[16])
	h.Version = b[17]
	h.Exchange = b[18]
	h.Flags = b[19]
	h.MessageID = binary.BigEndian.Uint32(b[20:])
	h.Length = binary.BigEndian.Uint32(b[24:])
	if h.Version>>4 != 2 {
		return h, fmt.Errorf("wire: header: major version %d, want 2", h.Version>>4)
	}
	if h.Length < HeaderLen || h.Length > MaxMessageLen {
		return h, fmt.Errorf("wire: header: length %d out of range", h.Length)
	}
	if int(h.Length) != len(b) {
		return h, fmt.Errorf("wire: header: length field %d, datagram %d bytes", h.Length, len(b))
	}
	return h, nil
}

func (h *Header) append(b []byte) []byte {
	v := h.Version
	if v == 0 {
		v = 0x20
	}
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	b = append(b, byte(h.NextPayload), v, h.Exchange, h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// Message is a decoded IKE message. When it carries an SK or SKF payload, that
// payload is last and its plaintext is not decoded here.
type Message struct {
	Header
	Payloads []Payload
}

// Marshal encodes m, setting the header's NextPayload and Length and every
// payload's chain and length fields. An [*Encrypted] or [*Fragment] payload
// must be last; its body is copied verbatim, so callers size it first and
// seal it in the returned buffer.
func (m *Message) Marshal() ([]byte, error) {
	for i, p := range m.Payloads {
		switch p.(type) {
		case *Encrypted, *Fragment:
			if i != len(m.Payloads)-1 {
				return nil, errors.New("wire: SK/SKF payload must be last")
			}
		}
	}
	b := make([]byte, HeaderLen, 512)
	first, b, err := appendPayloads(b, m.Payloads)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxMessageLen {
		return nil, fmt.Errorf("wire: message of %d bytes too large", len(b))
	}
	if m.Header.Version == 0 {
		m.Header.Version = 0x20
	}
	h := m.Header
	h.NextPayload = first
	h.Length = uint32(len(b))
	h.append(b[:0])
	m.Header.NextPayload, m.Header.Length = h.NextPayload, h.Length
	return b, nil
}

// Parse decodes one IKE message. Unknown non-critical payloads become
// [*Raw]; an unknown critical payload is an [*UnsupportedCriticalError].
func Parse(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	ps, err := ParsePayloads(h.NextPayload, b[HeaderLen:])
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// MarshalPayloads encodes a payload chain on its own, as the plaintext of an
// SK payload, returning the type of the first payload.
func MarshalPayloads(ps []Payload) (PayloadType, []byte, error) {
	return appendPayloads(nil, ps)
}

func appendPayloads(b []byte, ps []Payload) (PayloadType, []byte, error) {
	first := PayloadNone
	if len(ps) > 0 {
		first = ps[0].Type()
	}
	for i, p := range ps {
		next := PayloadNone
		switch q := p.(type) {
		case *Encrypted:
			next = q.NextPayload
		case *Fragment:
			next = q.NextPayload
		default:
			if i+1 < len(ps) {
				next = ps[i+1].Type()
			}
		}
		start := len(b)
		var flags byte
		if r, ok := p.(*Raw); ok && r.Critical {
			flags = criticalBit
		}
		b = append(b, byte(next), flags, 0, 0)
		var err error
		b, err = p.appendBody(b)
		if err != nil {
			return 0, nil, fmt.Errorf("wire: %s payload: %w", p.Type(), err)
		}
		n := len(b) - start
		if n > 0xffff {
			return 0, nil, fmt.Errorf("wire: %s payload of %d bytes too large", p.Type(), n)
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	}
	return first, b, nil
}

// UnsupportedCriticalError reports a payload we do not know with the
// critical bit set (RFC 7296 §2.5); the answer is UNSUPPORTED_CRITICAL_PAYLOAD.
type UnsupportedCriticalError struct{ Type PayloadType }

func (e *UnsupportedCriticalError) Error() string {
	return fmt.Sprintf("wire: unsupported critical payload %d", e.Type)
}

// ParsePayloads decodes a payload chain starting with type first, as found
// after the header or inside a decrypted SK payload.
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	var ps []Payload
	next := first
	for next != PayloadNone {
		if len(ps) >= 256 {
			return nil, errors.New("wire: more than 256 payloads")
		}
		if len(b) < genericHeaderLen {
			return nil, fmt.Errorf("wire: %s payload header: %w", next, ErrTruncated)
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < genericHeaderLen || n > len(b) {
			return nil, fmt.Errorf("wire: %s payload: length %d with %d bytes left: %w", next, n, len(b), ErrTruncated)
		}
		critical := b[1]&criticalBit != 0
		body := b[genericHeaderLen:n]
		typ := next
		next = PayloadType(b[0])
		p, err := parseBody(typ, body, critical)
		if err != nil {
			return nil, fmt.Errorf("wire: %s payload: %w", typ, err)
		}
		switch q := p.(type) {
		case *Encrypted:
			q.NextPayload = next
		case *Fragment:
			q.NextPayload = next
		}
		ps = append(ps, p)
		b = b[n:]
		if typ == PayloadSK || typ == PayloadSKF {
			if len(b) != 0 {
				return nil, fmt.Errorf("wire: %d bytes after %s payload", len(b), typ)
			}
			return ps, nil
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("wire: %d trailing bytes after last payload", len(b))
	}
	return ps, nil
}

func (t PayloadType) String() string {
	switch t {
	case PayloadNone:
		return "none"
	case PayloadSA:
		return "SA"
	case PayloadKE:
		return "KE"
	case PayloadIDi:
		return "IDi"
	case PayloadIDr:
		return "IDr"
	case PayloadCERT:
		return "CERT"
	case PayloadCERTREQ:
		return "CERTREQ"
	case PayloadAUTH:
		return "AUTH"
	case PayloadNonce:
		return "Nonce"
	case PayloadN:
		return "N"
	case PayloadD:
		return "D"
	case PayloadVID:
		return "VID"
	case PayloadTSi:
		return "TSi"
	case PayloadTSr:
		return "TSr"
	case PayloadSK:
		return "SK"
	case PayloadCP:
		return "CP"
	case PayloadEAP:
		return "EAP"
	case PayloadSKF:
		return "SKF"
	}
	return fmt.Sprintf("payload(%d)", uint8(t))
}
