package cache

import (
	"strings"

	"github.com/miekg/dns"
)

// kind is what an entry holds.
type kind uint8

const (
	positive kind = iota + 1 // records of the question's type (maybe after a CNAME chain)
	negative                 // NXDOMAIN or NODATA with the zone's SOA
	servFail                 // a resolution failure, cached briefly
)

const maxChain = 16 // CNAME hops followed before the answer is judged unusable

// selection is the part of a response that is worth keeping.
type selection struct {
	kind   kind
	answer []dns.RR
	ns     []dns.RR
	ttl    uint32 // before clamping
}

// selectRecords keeps only what answers q: the CNAME chain from q's name,
// the records of q's type at its end (with DO, the RRSIGs covering them and
// the DNAMEs that synthesised the chain), and for a negative answer the SOA of
// a zone enclosing the final name (with DO, also its NSEC/NSEC3 proofs).
// Everything else — extra answers, NS and glue — is dropped, so an upstream
// cannot plant records for names it was not asked about. ok is false when the
// response must not be cached at all.
func selectRecords(q dns.Question, resp *dns.Msg, do bool) (s selection, ok bool) {
	if resp.Rcode == dns.RcodeServerFailure {
		return selection{kind: servFail}, true
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return s, false
	}
	final, found := q.Name, false
	chain := []string{q.Name}
	for hop := 0; hop <= maxChain && !found; hop++ {
		var cname *dns.CNAME
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != q.Qclass || !strings.EqualFold(h.Name, final) {
				continue
			}
			switch {
			case h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY && h.Rrtype != dns.TypeRRSIG:
				s.answer = append(s.answer, rr)
				found = true
			case h.Rrtype == dns.TypeCNAME && cname == nil:
				cname = rr.(*dns.CNAME)
			}
		}
		if found || cname == nil {
			break
		}
		if hop == maxChain || inChain(chain, cname.Target) {
			return s, false // too long or a loop: not an answer
		}
		s.answer = append(s.answer, cname)
		final = cname.Target
		chain = append(chain, final)
	}
	if found && resp.Rcode == dns.RcodeNameError {
		return s, false // contradictory
	}
	if do {
		s.answer = append(s.answer, dnssecAnswer(resp.Answer, s.answer, chain, q.Qclass)...)
	}
	s.ttl = minTTL(s.answer, 1<<31-1)
	if found {
		s.kind = positive
		return s, true
	}

	// NXDOMAIN or NODATA: RFC 2308 §5 caches it only with the SOA, for
	// min(SOA TTL, SOA MINIMUM).
	var soa *dns.SOA
	for _, rr := range resp.Ns {
		if x, isSOA := rr.(*dns.SOA); isSOA && x.Hdr.Class == q.Qclass && dns.IsSubDomain(x.Hdr.Name, final) {
			soa = x
			break
		}
	}
	if soa == nil {
		return s, false // RFC 2308 §5: without a SOA it SHOULD NOT be cached
	}
	s.kind = negative
	s.ns = append(s.ns, soa)
	s.ttl = min(s.ttl, soa.Hdr.Ttl, soa.Minttl)
	if do {
		for _, rr := range resp.Ns {
			switch rr.Header().Rrtype {
			case dns.TypeNSEC, dns.TypeNSEC3, dns.TypeRRSIG:
				if dns.IsSubDomain(soa.Hdr.Name, rr.Header().Name) {
					s.ns = append(s.ns, rr)
					s.ttl = min(s.ttl, rr.Header().Ttl)
				}
			}
		}
	}
	return s, true
}

// dnssecAnswer returns the DNAMEs that synthesised CNAMEs of the chain and
// the RRSIGs covering a kept RRset, which a validating client needs.
func dnssecAnswer(all, kept []dns.RR, chain []string, class uint16) []dns.RR {
	var extra []dns.RR
	for _, rr := range all {
		h := rr.Header()
		if h.Class != class {
			continue
		}
		switch x := rr.(type) {
		case *dns.DNAME:
			for _, n := range chain[:len(chain)-1] {
				if !strings.EqualFold(x.Hdr.Name, n) && dns.IsSubDomain(x.Hdr.Name, n) {
					extra = append(extra, rr)
					kept = append(kept[:len(kept):len(kept)], rr)
					break
				}
			}
		}
	}
	for _, rr := range all {
		sig, isSig := rr.(*dns.RRSIG)
		if !isSig || sig.Hdr.Class != class {
			continue
		}
		for _, k := range kept {
			if k.Header().Rrtype == sig.TypeCovered && strings.EqualFold(k.Header().Name, sig.Hdr.Name) {
				extra = append(extra, rr)
				break
			}
		}
	}
	return extra
}

func inChain(chain []string, name string) bool {
	for _, n := range chain {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// minTTL is RFC 2181 §5.2's rule applied across the whole answer: the entry
// lives as long as its shortest-lived record.
func minTTL(rrs []dns.RR, ttl uint32) uint32 {
	for _, rr := range rrs {
		ttl = min(ttl, rr.Header().Ttl)
	}
	return ttl
}
