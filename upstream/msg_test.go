package upstream

import (
	"encoding/binary"
	"testing"

	"github.com/miekg/dns"
)

func TestPackQueryPadding(t *testing.T) {
	for _, tt := range []struct {
		name string
		edns bool
		pad  int
	}{
		{"no padding", true, 0},
		{"pad with EDNS", true, 128},
		{"pad adds EDNS", false, 128},
		{"pad 468", true, 468},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := query("a-fairly-long-name.example.", dns.TypeAAAA)
			if tt.edns {
				req.SetEdns0(1232, true)
				req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 7)})
			}
			before, _ := req.Pack()
			wire, err := packQuery(req, 0xbeef, tt.pad, make([]byte, maxMsgSize))
			if err != nil {
				t.Fatal(err)
			}
			if after, _ := req.Pack(); string(before) != string(after) {
				t.Fatal("packQuery modified req")
			}
			if binary.BigEndian.Uint16(wire) != 0xbeef {
				t.Fatal("ID not set")
			}
			if tt.pad > 0 && len(wire)%tt.pad != 0 {
				t.Fatalf("length %d not a multiple of %d", len(wire), tt.pad)
			}
			m := new(dns.Msg)
			if err := m.Unpack(wire); err != nil {
				t.Fatal(err)
			}
			pads := 0
			if opt := m.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if o.Option() == dns.EDNS0PADDING {
						pads++
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.pad > 0 || tt.edns]; pads != want {
				t.Fatalf("%d padding options, want %d", pads, want)
			}
		})
	}
}

func TestCheckResponse(t *testing.T) {
	req := query("www.Example.", dns.TypeA)
	reply := func(edit func(*dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(req)
		edit(m)
		return m
	}
	tests := []struct {
		name string
		resp *dns.Msg
		want dropReason
	}{
		{"match", reply(func(*dns.Msg) {}), ""},
		{"0x20 case", reply(func(m *dns.Msg) { m.Question[0].Name = "WWW.eXAMPLE." }), ""},
		{"nxdomain", reply(func(m *dns.Msg) { m.Rcode = dns.RcodeNameError }), ""},
		{"not a response", reply(func(m *dns.Msg) { m.Response = false }), dropNotResp},
		{"other name", reply(func(m *dns.Msg) { m.Question[0].Name = "www.example.com." }), dropQuestion},
		{"other type", reply(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }), dropQuestion},
		{"other class", reply(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dropQuestion},
		{"no question", reply(func(m *dns.Msg) { m.Question = nil }), dropQuestion},
		{"two questions", reply(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dropQuestion},
	}
	for _, tt := range tests {
		if got, ok := checkResponse(req, tt.resp); got != tt.want || ok != (tt.want == "") {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

// FuzzUnpackResponse feeds arbitrary bytes where an answer is expected:
// they are rejected with a reason or accepted as a matching answer, never a
// panic.
func FuzzUnpackResponse(f *testing.F) {
	req := query("www.example.", dns.TypeA)
	good := answer(req, "192.0.2.1")
	good.Id = 0x1234
	wire, _ := good.Pack()
	f.Add(wire)
	f.Add(wire[:12])
	f.Add([]byte{0x12, 0x34})
	f.Add(append(append([]byte{}, wire[:12]...), 0xc0, 12, 0, 1, 0, 1)) // pointer loop
	f.Fuzz(func(t *testing.T, raw []byte) {
		resp, why := unpackResponse(req, raw, 0x1234)
		if (resp == nil) == (why == "") {
			t.Fatalf("resp %v with reason %q", resp != nil, why)
		}
		if resp != nil {
			if _, ok := checkResponse(req, resp); !ok || resp.Id != req.Id {
				t.Fatal("accepted a non-matching answer")
			}
		}
	})
}
