package ike

import (
	"errors"
	"fmt"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

// maxFragments bounds reassembly (RFC 7383 §2.6 leaves it to us); 64
// fragments of ~1200 bytes exceed any IKE message we expect.
const maxFragments = 64

// reassembly collects the fragments of one message (RFC 7383 §2.6).
type reassembly struct {
	id       uint32
	response bool
	total    uint16
	next     wire.PayloadType
	parts    [][]byte
	have     int
	size     int
}

// seal protects payloads for sa. With fragmentation negotiated and a
// message over Config.FragmentSize it returns RFC 7383 SKF fragments, each
// protected on its own; otherwise one SK message.
func (s *Session) seal(sa *ikeSA, h wire.Header, ps []wire.Payload) ([][]byte, error) {
	c := sa.keys.out
	b, err := sealMessage(h, ps, c)
	if err != nil {
		return nil, err
	}
	if !sa.frag || len(b) <= s.cfg.FragmentSize {
		return [][]byte{b}, nil
	}
	first, plain, err := wire.MarshalPayloads(ps)
	if err != nil {
		return nil, err
	}
	// Largest chunk whose fragment fits: header, SKF header, IV, ICV, pad.
	n := s.cfg.FragmentSize - wire.HeaderLen - 8
	for n > 0 && wire.HeaderLen+8+c.bodyLen(n) > s.cfg.FragmentSize {
		n--
	}
	if n < 16 {
		return nil, fmt.Errorf("ike: fragment size %d too small", s.cfg.FragmentSize)
	}
	total := (len(plain) + n - 1) / n
	if total > maxFragments {
		return nil, fmt.Errorf("ike: message needs %d fragments", total)
	}
	out := make([][]byte, 0, total)
	for i := 0; i < total; i++ {
		chunk := plain[i*n : min((i+1)*n, len(plain))]
		f := &wire.Fragment{Number: uint16(i + 1), Total: uint16(total)}
		if i == 0 {
			f.NextPayload = first
		}
		bl := c.bodyLen(len(chunk))
		f.Body = make([]byte, bl)
		m := &wire.Message{Header: h, Payloads: []wire.Payload{f}}
		fb, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		if err := c.seal(fb, len(fb)-bl, chunk); err != nil {
			return nil, err
		}
		out = append(out, fb)
	}
	return out, nil
}

// open decrypts an SK message of sa, or one SKF fragment; complete is false
// (and err nil) while fragments of the message are still missing.
func (s *Session) open(sa *ikeSA, raw []byte, m *wire.Message) (ps []wire.Payload, complete bool, err error) {
	if len(m.Payloads) == 0 {
		return nil, false, errors.New("ike: message has no SK payload")
	}
	f, ok := m.Payloads[len(m.Payloads)-1].(*wire.Fragment)
	if !ok {
		ps, err := openMessage(raw, m, sa.keys.in)
		return ps, err == nil, err
	}
	if !sa.frag {
		return nil, false, errors.New("ike: fragment without negotiated fragmentation")
	}
	if f.Total > maxFragments {
		return nil, false, fmt.Errorf("ike: message of %d fragments", f.Total)
	}
	plain, err := sa.keys.in.open(raw, len(raw)-len(f.Body))
	if err != nil {
		return nil, false, err
	}
	r := sa.reasm
	if r == nil || r.id != m.MessageID || r.response != m.IsResponse() || r.total != f.Total {
		r = &reassembly{id: m.MessageID, response: m.IsResponse(), total: f.Total, parts: make([][]byte, f.Total)}
		sa.reasm = r
	}
	if r.parts[f.Number-1] != nil {
		return nil, false, nil // duplicate
	}
	if f.Number == 1 {
		r.next = f.NextPayload
	}
	r.parts[f.Number-1] = plain
	r.have++
	r.size += len(plain)
	if r.size > wire.MaxMessageLen {
		sa.reasm = nil
		return nil, false, errors.New("ike: reassembled message too large")
	}
	if r.have < int(r.total) {
		return nil, false, nil
	}
	sa.reasm = nil
	joined := make([]byte, 0, r.size)
	for _, p := range r.parts {
		joined = append(joined, p...)
	}
	ps, err = wire.ParsePayloads(r.next, joined)
	return ps, err == nil, err
}

// send transmits every datagram of one message.
func (s *Session) send(msgs [][]byte) {
	for _, b := range msgs {
		if err := s.conn.Send(b); err != nil {
			s.log.Debug("sending", "err", err)
		}
	}
}
