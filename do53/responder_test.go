package do53

import (
	"context"
	"errors"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/laminadns/lamina/resolver"
)

// TestResponder exercises the Responder as DoH and DoQ use it.
func TestResponder(t *testing.T) {
	static := staticWire(pack(t, answerAMsg("wire.example.")))
	h := &wireFake{
		HandlerFunc: func(ctx context.Context, q *resolver.Query) (*dns.Msg, error) {
			switch q.Msg.Question[0].Name {
			case "drop.example.":
				return nil, resolver.ErrDrop
			case "panic.example.":
				panic("bug")
			}
			if q.Transport != resolver.HTTPS || q.MaxSize != 65535 || q.Listener != "doh" {
				return nil, errors.New("bad query facts")
			}
			return answerA(ctx, q)
		},
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if raw[13] != 'w' {
				return nil, false
			}
			return static(q, raw, dst)
		},
	}
	m := NewMetrics(prometheus.NewRegistry())
	r, err := NewResponder(Config{Handler: h, Listener: "doh", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	padded := withOpt(query("slow.example.", dns.TypeA), false, &dns.EDNS0_PADDING{Padding: make([]byte, 4)})
	padded.Id = 0 // as DoH GET and DoQ send
	tests := []struct {
		name  string
		raw   []byte
		err   error
		rcode int
		size  int
	}{
		{"slow path, padded", pack(t, padded), nil, dns.RcodeSuccess, 468},
		{"fast path", pack(t, query("wire.example.", dns.TypeA)), nil, dns.RcodeSuccess, 0},
		{"malformed", qrSet, ErrMalformed, 0, 0},
		{"formerr", compressionLoop, nil, dns.RcodeFormatError, 0},
		{"policy drop", pack(t, query("drop.example.", dns.TypeA)), resolver.ErrDrop, 0, 0},
		{"panic", pack(t, query("panic.example.", dns.TypeA)), nil, dns.RcodeServerFailure, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &resolver.Query{Transport: resolver.HTTPS}
			out, err := r.Respond(context.Background(), q, tt.raw, make([]byte, 0, 512))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			resp := unpack(t, out)
			if resp.Rcode != tt.rcode || resp.Id != uint16(tt.raw[0])<<8|uint16(tt.raw[1]) {
				t.Fatalf("rcode %s id %d", dns.RcodeToString[resp.Rcode], resp.Id)
			}
			if tt.size != 0 && len(out) != tt.size {
				t.Fatalf("%d bytes, want %d", len(out), tt.size)
			}
		})
	}
	if n := value(m.panics); n != 1 {
		t.Fatalf("panics %v", n)
	}

	// TryWire answers only what the fast path takes, and never runs ServeDNS.
	for _, tt := range []struct {
		name string
		raw  []byte
		hit  bool
	}{
		{"fast path", pack(t, query("wire.example.", dns.TypeA)), true},
		{"needs ServeDNS", pack(t, query("panic.example.", dns.TypeA)), false},
		{"padded on an encrypted transport", pack(t, withOpt(query("wire.example.", dns.TypeA), false, &dns.EDNS0_PADDING{Padding: make([]byte, 4)})), false},
		{"malformed", qrSet, false},
	} {
		q := &resolver.Query{Transport: resolver.HTTPS}
		out, ok := r.TryWire(q, tt.raw, nil)
		if ok != tt.hit {
			t.Fatalf("TryWire %s: ok %v", tt.name, ok)
		}
		if ok && (unpack(t, out).Id != uint16(tt.raw[0])<<8|uint16(tt.raw[1]) || q.Listener != "doh") {
			t.Fatalf("TryWire %s: wrong answer or listener %q", tt.name, q.Listener)
		}
	}
	if n := value(m.panics); n != 1 {
		t.Fatalf("TryWire ran the Handler: panics %v", n)
	}
}
