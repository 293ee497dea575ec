package do53

import (
	"bytes"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

// padTestMsg is a response with compressed names in every section and an
// OPT record (with an EDE option) last, as the cache writes them.
func padTestMsg(t testing.TB) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion("www.example.org.", dns.TypeA)
	m.Response = true
	m.Answer = []dns.RR{
		mustRR("www.example.org. 300 IN CNAME web.example.org."),
		mustRR("web.example.org. 300 IN A 192.0.2.1"),
		mustRR("web.example.org. 300 IN A 192.0.2.2"),
	}
	m.Ns = []dns.RR{mustRR("example.org. 300 IN NS ns.example.org.")}
	m.SetEdns0(1232, true)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: 3}}
	m.Compress = true
	return m
}

// TestPadWire: padWire gives byte for byte what the slow path's pad gives,
// and declines what it cannot pad.
func TestPadWire(t *testing.T) {
	m := padTestMsg(t)
	for _, max := range []int{65535, 600, 480, 200, 118} {
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		want := pad(m.Copy(), wire, max, nil)
		got, ok := padWire(bytes.Clone(wire), max)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("max %d: padWire %d bytes (ok %v), pad %d bytes", max, len(got), ok, len(want))
		}
		r := new(dns.Msg)
		if err := r.Unpack(got); err != nil {
			t.Fatalf("max %d: %v", max, err)
		}
		switch {
		case max == 118: // no room for the option header: left as it was
			if len(got) != len(wire) {
				t.Errorf("max %d: %d bytes, want %d", max, len(got), len(wire))
			}
		case len(got)%paddingBlock != 0 && len(got) != max:
			t.Errorf("max %d: %d bytes", max, len(got))
		}
	}

	noOPT := padTestMsg(t)
	noOPT.Extra = nil
	padded := padTestMsg(t)
	padded.IsEdns0().Option = append(padded.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 3)})
	optFirst := padTestMsg(t)
	optFirst.Extra = append(optFirst.Extra, mustRR("ns.example.org. 300 IN A 192.0.2.53"))
	for name, m := range map[string]*dns.Msg{"no OPT": noOPT, "already padded": padded, "OPT not last": optFirst} {
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := padWire(bytes.Clone(wire), 65535); ok || !bytes.Equal(got, wire) {
			t.Errorf("%s: ok %v, %d bytes; want declined and untouched", name, ok, len(got))
		}
	}
}

// TestTryWirePadded: on an encrypted transport a padded query's fast-path
// answer is padded; over UDP it is not (RFC 8467 is for encrypted
// transports), as on the slow path.
func TestTryWirePadded(t *testing.T) {
	ans := padTestMsg(t)
	ans.IsEdns0().Option = nil
	h := &wireFake{HandlerFunc: answerA, onWire: staticWire(pack(t, ans))}
	r, err := NewResponder(Config{Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	q := withOpt(query("www.example.org.", dns.TypeA), true, &dns.EDNS0_PADDING{Padding: make([]byte, 20)})
	raw := pack(t, q)
	for _, tc := range []struct {
		tr   resolver.Transport
		size int
	}{{resolver.HTTPS, paddingBlock}, {resolver.QUIC, paddingBlock}, {resolver.TLS, paddingBlock}, {resolver.UDP, len(pack(t, ans))}} {
		out, ok := r.TryWire(&resolver.Query{Transport: tc.tr}, raw, nil)
		if !ok || len(out) != tc.size {
			t.Errorf("%v: ok %v, %d bytes; want %d", tc.tr, ok, len(out), tc.size)
			continue
		}
		if m := unpack(t, out); m.Id != q.Id || len(m.Answer) != 3 {
			t.Errorf("%v: answer %v", tc.tr, m)
		}
	}
}

func FuzzPadWire(f *testing.F) {
	wire, _ := padTestMsg(f).Pack()
	f.Add(wire, 65535)
	f.Add(wire[:len(wire)-3], 600)
	f.Fuzz(func(t *testing.T, msg []byte, max int) {
		max = max&0xffff | 512
		in := bytes.Clone(msg)
		out, ok := padWire(msg, max)
		if !ok {
			if !bytes.Equal(out, in) {
				t.Fatal("declined but changed")
			}
			return
		}
		if len(out) != len(in) && len(out)%paddingBlock != 0 && len(out) != max {
			t.Fatalf("padded to %d bytes (max %d)", len(out), max)
		}
		if len(out) > max && len(out) != len(in) {
			t.Fatalf("padded past max: %d > %d", len(out), max)
		}
	})
}

// TestFinishWireKeepalive: on DoT a query with keepalive and padding gets
// both, in Reply's order and bytes; on TCP only keepalive; on DoH neither
// keepalive (RFC 7828 is for TCP and DoT) nor anything on UDP.
func TestFinishWireKeepalive(t *testing.T) {
	m := padTestMsg(t)
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	want := func(keepalive, padding bool) []byte {
		r := m.Copy()
		if keepalive {
			r.IsEdns0().Option = append(r.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: 300})
		}
		w, err := r.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if padding {
			w = pad(r, w, 65535, nil)
		}
		return w
	}
	info := wireInfo{keepalive: true, padding: true}
	for _, tc := range []struct {
		tr                 resolver.Transport
		keepalive, padding bool
	}{
		{resolver.TLS, true, true},
		{resolver.TCP, true, false},
		{resolver.HTTPS, false, true},
		{resolver.UDP, false, false},
	} {
		got, ok := finishWire(bytes.Clone(wire), &info, tc.tr, 30*time.Second, 65535)
		if w := want(tc.keepalive, tc.padding); !ok || !bytes.Equal(got, w) {
			t.Errorf("%v: ok %v, %d bytes, want Reply's %d", tc.tr, ok, len(got), len(w))
		}
	}
	// An idle timeout under 100 ms is not advertised, as on the slow path.
	if got, ok := finishWire(bytes.Clone(wire), &wireInfo{keepalive: true}, resolver.TCP, 50*time.Millisecond, 65535); !ok || !bytes.Equal(got, wire) {
		t.Errorf("idle 50ms: ok %v, %d bytes", ok, len(got))
	}
}
