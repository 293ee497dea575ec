package do53

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

func withOpt(m *dns.Msg, do bool, opts ...dns.EDNS0) *dns.Msg {
	m.SetEdns0(4096, do)
	m.IsEdns0().Option = opts
	return m
}

func unpack(t *testing.T, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("unpacking reply: %v", err)
	}
	return m
}

func optCodes(m *dns.Msg) []uint16 {
	var codes []uint16
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			codes = append(codes, e.Option())
		}
	}
	return codes
}

func TestReplyErrors(t *testing.T) {
	req := withOpt(query("example.", dns.TypeA), false)
	req.Id = 4242
	tests := []struct {
		name  string
		resp  *dns.Msg
		err   error
		ok    bool
		rcode int
		ede   bool
	}{
		{"drop", nil, fmt.Errorf("limit: %w", resolver.ErrDrop), false, 0, false},
		{"refused", nil, resolver.ErrRefused, true, dns.RcodeRefused, true},
		{"servfail", nil, errors.New("boom"), true, dns.RcodeServerFailure, false},
		{"ede", nil, &resolver.Error{Code: dns.ExtendedErrorCodeNoReachableAuthority, Text: "all down"}, true, dns.RcodeServerFailure, true},
		{"nil response", nil, nil, true, dns.RcodeServerFailure, false},
		{"answer", new(dns.Msg).SetRcode(req, dns.RcodeNameError), nil, true, dns.RcodeNameError, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &resolver.Query{Msg: req, Transport: resolver.UDP, MaxSize: 1232}
			b, ok := Reply(q, tt.resp, tt.err, nil)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			m := unpack(t, b)
			if m.Id != 4242 || !m.Response || m.Rcode != tt.rcode {
				t.Fatalf("got id %d qr %v rcode %s", m.Id, m.Response, dns.RcodeToString[m.Rcode])
			}
			hasEDE := false
			for _, c := range optCodes(m) {
				hasEDE = hasEDE || c == dns.EDNS0EDE
			}
			if hasEDE != tt.ede {
				t.Errorf("EDE present = %v, want %v", hasEDE, tt.ede)
			}
		})
	}
}

func TestReplyEDNS(t *testing.T) {
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(198, 51, 100, 0).To4()}
	upstreamOpts := func() []dns.EDNS0 {
		return []dns.EDNS0{
			&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708aabbccddeeff0011"},
			&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "6e73"},
			&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer},
			&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, SourceScope: 24, Address: net.IPv4(198, 51, 100, 0).To4()},
			&dns.EDNS0_PADDING{Padding: make([]byte, 100)},
		}
	}
	tests := []struct {
		name     string
		req      *dns.Msg
		wantOPT  bool
		wantDO   bool
		wantOpts []uint16
	}{
		{"no OPT in query", query("a.example.", dns.TypeA), false, false, nil},
		{"OPT with DO", withOpt(query("a.example.", dns.TypeA), true), true, true, []uint16{dns.EDNS0EDE}},
		{"OPT without DO", withOpt(query("a.example.", dns.TypeA), false), true, false, []uint16{dns.EDNS0EDE}},
		{"client sent ECS", withOpt(query("a.example.", dns.TypeA), false, ecs), true, false, []uint16{dns.EDNS0EDE, dns.EDNS0SUBNET}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := new(dns.Msg).SetReply(tt.req)
			resp.SetEdns0(512, false)
			resp.IsEdns0().Option = upstreamOpts()
			q := &resolver.Query{Msg: tt.req, Transport: resolver.UDP}
			b, ok := Reply(q, resp, nil, make([]byte, 0, 512))
			if !ok {
				t.Fatal("dropped")
			}
			m := unpack(t, b)
			o := m.IsEdns0()
			if (o != nil) != tt.wantOPT {
				t.Fatalf("OPT present = %v, want %v", o != nil, tt.wantOPT)
			}
			if o == nil {
				return
			}
			if o.UDPSize() != resolver.DefaultUDPSize || o.Version() != 0 || o.Do() != tt.wantDO {
				t.Errorf("OPT size %d version %d DO %v", o.UDPSize(), o.Version(), o.Do())
			}
			if got := fmt.Sprint(optCodes(m)); got != fmt.Sprint(tt.wantOpts) {
				t.Errorf("options %s, want %v", got, tt.wantOpts)
			}
		})
	}
}

func TestReplyKeepalive(t *testing.T) {
	req := withOpt(query("a.example.", dns.TypeA), false, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	for _, tr := range []resolver.Transport{resolver.UDP, resolver.TCP, resolver.TLS, resolver.HTTPS, resolver.QUIC} {
		b, _ := Reply(&resolver.Query{Msg: req, Transport: tr}, new(dns.Msg).SetReply(req), nil, nil)
		var ka *dns.EDNS0_TCP_KEEPALIVE
		for _, o := range unpack(t, b).IsEdns0().Option {
			if k, ok := o.(*dns.EDNS0_TCP_KEEPALIVE); ok {
				ka = k
			}
		}
		want := tr == resolver.TCP || tr == resolver.TLS
		if (ka != nil) != want {
			t.Errorf("%v: keepalive present = %v, want %v", tr, ka != nil, want)
		}
		if ka != nil && ka.Timeout != uint16(DefaultIdleTimeout.Milliseconds()/100) {
			t.Errorf("%v: keepalive timeout %d", tr, ka.Timeout)
		}
	}
}

func TestReplyPadding(t *testing.T) {
	padded := withOpt(query("a.example.", dns.TypeA), false, &dns.EDNS0_PADDING{Padding: make([]byte, 20)})
	plain := withOpt(query("a.example.", dns.TypeA), false)
	tests := []struct {
		name    string
		req     *dns.Msg
		tr      resolver.Transport
		maxSize int
		wantLen func(int) bool
	}{
		{"DoT padded", padded, resolver.TLS, 0, func(n int) bool { return n == 468 }},
		{"DoQ padded", padded, resolver.QUIC, 0, func(n int) bool { return n == 468 }},
		{"DoH capped by MaxSize", padded, resolver.HTTPS, 300, func(n int) bool { return n == 300 }},
		{"TCP never padded", padded, resolver.TCP, 0, func(n int) bool { return n < 100 }},
		{"DoT unpadded query", plain, resolver.TLS, 0, func(n int) bool { return n < 100 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := answerA(context.TODO(), &resolver.Query{Msg: tt.req})
			b, ok := Reply(&resolver.Query{Msg: tt.req, Transport: tt.tr, MaxSize: tt.maxSize}, resp, nil, nil)
			if !ok || !tt.wantLen(len(b)) {
				t.Fatalf("len %d", len(b))
			}
			if m := unpack(t, b); len(m.Answer) != 1 {
				t.Fatalf("answer lost: %v", m)
			}
		})
	}
	// A large answer is padded to the next block.
	resp := new(dns.Msg).SetReply(padded)
	for i := range 30 {
		resp.Answer = append(resp.Answer, mustRR(fmt.Sprintf("a.example. 60 IN TXT \"record number %d of a long TXT RRset\"", i)))
	}
	b, _ := Reply(&resolver.Query{Msg: padded, Transport: resolver.TLS}, resp, nil, nil)
	if len(b)%468 != 0 || len(b) < 468*2 {
		t.Fatalf("large padded response is %d bytes", len(b))
	}
}

func TestReplyTruncate(t *testing.T) {
	req := query("big.example.", dns.TypeTXT)
	resp := new(dns.Msg).SetReply(req)
	// Three RRsets of 4 TXT records: about 3 × 4 × 60 bytes.
	for _, name := range []string{"big.example.", "c1.example.", "c2.example."} {
		for i := range 4 {
			resp.Answer = append(resp.Answer, mustRR(fmt.Sprintf("%s 60 IN TXT \"padding text for record %02d ......................\"", name, i)))
		}
	}
	b, ok := Reply(&resolver.Query{Msg: req, Transport: resolver.UDP}, resp, nil, nil)
	if !ok || len(b) > 512 {
		t.Fatalf("ok %v len %d", ok, len(b))
	}
	m := unpack(t, b)
	if !m.Truncated {
		t.Fatal("TC not set")
	}
	if len(m.Answer)%4 != 0 || len(m.Answer) == 0 {
		t.Fatalf("partial RRset kept: %d answers", len(m.Answer))
	}

	// Only additional data over the limit: no TC, whole RRsets.
	resp = new(dns.Msg).SetReply(req)
	resp.Answer = append(resp.Answer, mustRR("big.example. 60 IN TXT \"short\""))
	for i := range 12 {
		resp.Extra = append(resp.Extra, mustRR(fmt.Sprintf("glue.example. 60 IN TXT \"additional record %02d ..............................\"", i)))
	}
	b, _ = Reply(&resolver.Query{Msg: req, Transport: resolver.UDP}, resp, nil, nil)
	m = unpack(t, b)
	if m.Truncated || len(b) > 512 || len(m.Answer) != 1 || len(m.Extra) != 0 {
		t.Fatalf("TC %v len %d answers %d extra %d", m.Truncated, len(b), len(m.Answer), len(m.Extra))
	}

	// Streams take everything.
	resp = new(dns.Msg).SetReply(req)
	for i := range 40 {
		resp.Answer = append(resp.Answer, mustRR(fmt.Sprintf("big.example. 60 IN TXT \"record %02d\"", i)))
	}
	b, _ = Reply(&resolver.Query{Msg: req, Transport: resolver.TCP}, resp, nil, nil)
	if m = unpack(t, b); m.Truncated || len(m.Answer) != 40 {
		t.Fatalf("TCP answer truncated: TC %v, %d answers", m.Truncated, len(m.Answer))
	}
}

func TestReplyExtendedRcodeWithoutOPT(t *testing.T) {
	req := query("a.example.", dns.TypeA)
	resp := new(dns.Msg).SetRcode(req, dns.RcodeBadCookie)
	b, ok := Reply(&resolver.Query{Msg: req, Transport: resolver.UDP}, resp, nil, nil)
	if !ok || unpack(t, b).Rcode != dns.RcodeServerFailure {
		t.Fatalf("ok %v", ok)
	}
}

func TestReplyPacksInPlace(t *testing.T) {
	req := query("a.example.", dns.TypeA)
	resp, _ := answerA(context.TODO(), &resolver.Query{Msg: req})
	buf := make([]byte, 0, 512)
	b, _ := Reply(&resolver.Query{Msg: req, Transport: resolver.UDP}, resp, nil, buf)
	if &b[0] != &buf[:1][0] {
		t.Fatal("Reply allocated although buf was large enough")
	}
}
