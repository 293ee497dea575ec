package cache

import (
	"encoding/binary"
	"errors"

	"github.com/miekg/dns"
)

// packer is Set's reusable scratch space: a buffer any DNS message fits in
// and a compression map. Msg.Pack makes a new map on every call; that
// garbage, not the entries, is what made the heap (and so the RSS) grow
// well beyond the live entries while the cache fills.
type packer struct {
	buf  []byte
	comp map[string]int
}

func newPacker() any {
	return &packer{buf: make([]byte, 0xffff), comp: make(map[string]int)}
}

var errTooMany = errors.New("cache: too many records")

// pack packs a response of header bits (flags and rcode), the question q
// and the records, compressed as Msg.Pack would, with ID 0 and no
// additional section. The result is valid until the next pack.
func (p *packer) pack(bits uint16, q dns.Question, answer, ns []dns.RR) ([]byte, error) {
	if len(answer) > 0xffff || len(ns) > 0xffff {
		return nil, errTooMany
	}
	if len(p.comp) > 64 {
		p.comp = make(map[string]int) // don't keep clearing a big one
	}
	clear(p.comp)
	msg := p.buf
	clear(msg[:headerLen])
	binary.BigEndian.PutUint16(msg[2:], bits)
	binary.BigEndian.PutUint16(msg[4:], 1)
	binary.BigEndian.PutUint16(msg[6:], uint16(len(answer)))
	binary.BigEndian.PutUint16(msg[8:], uint16(len(ns)))
	off, err := dns.PackDomainName(q.Name, msg, headerLen, p.comp, true)
	if err != nil {
		return nil, err
	}
	if off+4 > len(msg) {
		return nil, dns.ErrBuf
	}
	binary.BigEndian.PutUint16(msg[off:], q.Qtype)
	binary.BigEndian.PutUint16(msg[off+2:], q.Qclass)
	off += 4
	for _, sec := range [2][]dns.RR{answer, ns} {
		for _, rr := range sec {
			// PackRR sets the record's Rdlength: pack a copy, since the
			// caller's messages are not the cache's to modify.
			if off, err = dns.PackRR(dns.Copy(rr), msg, off, p.comp, true); err != nil {
				return nil, err
			}
		}
	}
	return msg[:off], nil
}
