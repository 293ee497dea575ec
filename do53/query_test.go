package do53

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Hostile messages shared by the unit, UDP and stream tests.
var (
	// Header (ID 0x1234, RD, QDCOUNT 1) and a question name that points at itself.
	compressionLoop = mustHex("1234 0100 0001 0000 0000 0000 c00c 0001 0001")
	// A name of 300 bytes in 63-byte labels: over the 255-byte limit.
	oversizedName = func() []byte {
		b := mustHex("1235 0100 0001 0000 0000 0000")
		for range 5 {
			b = append(b, 63)
			b = append(b, strings.Repeat("a", 63)...)
		}
		return append(b, 0, 0, 1, 0, 1)
	}()
	truncatedHeader = mustHex("1236 0100 00")
	// A response (QR set) for a query nobody sent: must never be answered.
	qrSet = mustHex("1237 8180 0001 0000 0000 0000 0765 7861 6d70 6c65 00 0001 0001")
	// Header promising a question that is not there.
	missingQuestion = mustHex("1238 0100 0001 0000 0000 0000")
)

func TestParseQuery(t *testing.T) {
	twoQ := query("a.example.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	noQ := query("a.example.", dns.TypeA)
	noQ.Question = nil
	notify := query("a.example.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	v1 := withOpt(query("a.example.", dns.TypeA), false)
	v1.IsEdns0().SetVersion(1)
	twoOPT := withOpt(query("a.example.", dns.TypeA), false)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])

	tests := []struct {
		name  string
		raw   []byte
		drop  bool
		rcode int // -1: handed to the Handler
		id    uint16
	}{
		{"good", pack(t, query("a.example.", dns.TypeA)), false, -1, 0},
		{"empty", nil, true, 0, 0},
		{"truncated header", truncatedHeader, true, 0, 0},
		{"QR set", qrSet, true, 0, 0},
		{"compression loop", compressionLoop, false, dns.RcodeFormatError, 0x1234},
		{"oversized name", oversizedName, false, dns.RcodeFormatError, 0x1235},
		{"missing question", missingQuestion, false, dns.RcodeFormatError, 0x1238},
		{"two questions", pack(t, twoQ), false, dns.RcodeFormatError, twoQ.Id},
		{"no question", pack(t, noQ), false, dns.RcodeFormatError, noQ.Id},
		{"NOTIFY", pack(t, notify), false, dns.RcodeNotImplemented, notify.Id},
		{"EDNS version 1", pack(t, v1), false, dns.RcodeBadVers, v1.Id},
		{"two OPT records", pack(t, twoOPT), false, dns.RcodeFormatError, twoOPT.Id},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp, err := ParseQuery(tt.raw)
			if tt.drop {
				if !errors.Is(err, ErrMalformed) || resp != nil {
					t.Fatalf("err %v resp %v, want ErrMalformed", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.rcode < 0 {
				if resp != nil || req == nil {
					t.Fatalf("not handed to the Handler: %v", resp)
				}
				return
			}
			if resp == nil {
				t.Fatal("no early response")
			}
			b, ok := Reply(&resolver.Query{Msg: req, Transport: resolver.UDP}, resp, nil, nil)
			if !ok {
				t.Fatal("early response dropped")
			}
			m := unpack(t, b)
			if m.Rcode != tt.rcode || m.Id != tt.id || !m.Response {
				t.Fatalf("got rcode %s id %#x", dns.RcodeToString[m.Rcode], m.Id)
			}
		})
	}
}

func TestScanQuery(t *testing.T) {
	keep := withOpt(query("a.example.", dns.TypeAAAA), false, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
	padded := withOpt(query("a.example.", dns.TypeHTTPS), true, &dns.EDNS0_PADDING{Padding: make([]byte, 30)})
	small := withOpt(query("a.example.", dns.TypeA), false)
	small.IsEdns0().SetUDPSize(100)
	tests := []struct {
		name string
		raw  []byte
		ok   bool
		want wireInfo
	}{
		{"plain", pack(t, query("a.example.", dns.TypeMX)), true, wireInfo{qtype: dns.TypeMX}},
		{"keepalive", pack(t, keep), true, wireInfo{qtype: dns.TypeAAAA, edns: true, udpSize: 4096, keepalive: true}},
		{"padding", pack(t, padded), true, wireInfo{qtype: dns.TypeHTTPS, edns: true, udpSize: 4096, padding: true}},
		{"small EDNS", pack(t, small), true, wireInfo{qtype: dns.TypeA, edns: true, udpSize: 100}},
		{"compression loop", compressionLoop, false, wireInfo{}},
		{"oversized name", oversizedName, false, wireInfo{}},
		{"QR set", qrSet, false, wireInfo{}},
		{"missing question", missingQuestion, false, wireInfo{}},
		{"trailing byte", append(pack(t, query("a.example.", dns.TypeA)), 0), false, wireInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scanQuery(tt.raw)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("scanQuery = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMaxSize(t *testing.T) {
	big := withOpt(query("a.", dns.TypeA), false)
	tiny := withOpt(query("a.", dns.TypeA), false)
	tiny.IsEdns0().SetUDPSize(100)
	mid := withOpt(query("a.", dns.TypeA), false)
	mid.IsEdns0().SetUDPSize(1000)
	tests := []struct {
		req  *dns.Msg
		tr   resolver.Transport
		want int
	}{
		{query("a.", dns.TypeA), resolver.UDP, 512},
		{big, resolver.UDP, resolver.DefaultUDPSize},
		{tiny, resolver.UDP, 512},
		{mid, resolver.UDP, 1000},
		{query("a.", dns.TypeA), resolver.TCP, 65535},
		{tiny, resolver.QUIC, 65535},
	}
	for _, tt := range tests {
		if got := MaxSize(tt.req, tt.tr); got != tt.want {
			t.Errorf("MaxSize(%v over %v) = %d, want %d", tt.req.IsEdns0(), tt.tr, got, tt.want)
		}
		w, _ := scanQuery(pack(t, tt.req))
		if got := w.maxSize(tt.tr); got != tt.want {
			t.Errorf("wire maxSize over %v = %d, want %d", tt.tr, got, tt.want)
		}
	}
}
