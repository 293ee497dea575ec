package ike

import (
	"net/netip"

	"github.com/laminadns/lamina/ipsec/ike/wire"
)

func anySelector(v6 bool) wire.Selector {
	if v6 {
		return wire.Selector{StartAddr: netip.IPv6Unspecified(), EndAddr: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), EndPort: 65535}
	}
	return wire.Selector{StartAddr: netip.IPv4Unspecified(), EndAddr: netip.AddrFrom4([4]byte{255, 255, 255, 255}), EndPort: 65535}
}

// prefixSelector is the address range of p, any protocol and port.
func prefixSelector(p netip.Prefix) wire.Selector {
	p = p.Masked()
	start := p.Addr()
	b := start.AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	end, _ := netip.AddrFromSlice(b)
	return wire.Selector{StartAddr: start, EndAddr: end, EndPort: 65535}
}

// Prefixes converts an address range selector to the smallest list of
// prefixes covering exactly that range, for routing.
func Prefixes(s wire.Selector) []netip.Prefix {
	var out []netip.Prefix
	start, end := s.StartAddr, s.EndAddr
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || end.Less(start) {
		return nil
	}
	for n := 0; n < 300; n++ { // at most 2·128 prefixes for any range
		// Largest aligned block starting at start that does not pass end.
		bits := start.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(start, bits-1)
			if p.Masked().Addr() != start || prefixSelector(p).EndAddr.Compare(end) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(start, bits)
		out = append(out, p)
		last := prefixSelector(p).EndAddr
		if last == end {
			return out
		}
		start = last.Next()
	}
	return out
}
