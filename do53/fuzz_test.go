package do53

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
)

func fuzzSeeds(f *testing.F) {
	f.Add(pack(f, query("a.example.", dns.TypeA)))
	f.Add(pack(f, withOpt(query("a.example.", dns.TypeAAAA), true, &dns.EDNS0_PADDING{Padding: make([]byte, 9)})))
	f.Add(pack(f, withOpt(query("a.example.", dns.TypeTXT), false, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})))
	f.Add(compressionLoop)
	f.Add(oversizedName)
	f.Add(truncatedHeader)
	f.Add(qrSet)
	f.Add(missingQuestion)
}

// FuzzUDPQuery drives the decisions the UDP path makes on a packet (the
// fast-path scan, ParseQuery, Reply) and checks they agree and that whatever
// is sent is a well-formed response within the client's limit.
func FuzzUDPQuery(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		w, scanned := scanQuery(raw)
		req, early, err := ParseQuery(raw)
		if err != nil {
			if len(raw) >= headerLen && raw[2]&0x80 == 0 {
				t.Fatalf("ParseQuery dropped a query-shaped packet: %v", err)
			}
			if scanned {
				t.Fatal("fast path took a packet ParseQuery drops")
			}
			return
		}
		if scanned {
			if early != nil || req == nil || req.Question[0].Qtype != w.qtype {
				t.Fatalf("scan %+v disagrees with ParseQuery (early %v)", w, early)
			}
			if w.maxSize(resolver.UDP) != MaxSize(req, resolver.UDP) {
				t.Fatalf("wire MaxSize %d, decoded %d", w.maxSize(resolver.UDP), MaxSize(req, resolver.UDP))
			}
		}
		resp := early
		if resp == nil {
			resp, _ = answerA(context.Background(), &resolver.Query{Msg: req})
		}
		for _, tr := range []resolver.Transport{resolver.UDP, resolver.TLS} {
			q := &resolver.Query{Msg: req, Transport: tr, MaxSize: MaxSize(req, tr)}
			out, ok := Reply(q, resp.Copy(), nil, nil)
			if !ok {
				t.Fatal("nothing to send")
			}
			if len(out) > q.MaxSize {
				t.Fatalf("%d-byte response over a %d-byte limit", len(out), q.MaxSize)
			}
			m := new(dns.Msg)
			if err := m.Unpack(out); err != nil || !m.Response || m.Id != binary.BigEndian.Uint16(raw) {
				t.Fatalf("bad response %v: %v", m, err)
			}
		}
	})
}

// FuzzStreamFraming feeds arbitrary bytes to a StreamServer connection and
// checks that everything written back is a framed DNS response to a query
// that was sent, and that the server closes the stream rather than hang.
func FuzzStreamFraming(f *testing.F) {
	for _, q := range [][]byte{
		pack(f, query("a.example.", dns.TypeA)),
		compressionLoop,
		qrSet,
	} {
		f.Add(append([]byte{byte(len(q) >> 8), byte(len(q))}, q...))
	}
	two := pack(f, query("b.example.", dns.TypeA))
	f.Add(append(append([]byte{0, byte(len(two))}, two...), 0, byte(len(two))))
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1, 2, 3})

	static := staticWire(pack(f, answerAMsg("w.example.")))
	h := &wireFake{
		HandlerFunc: answerA,
		onWire: func(q *resolver.Query, raw, dst []byte) ([]byte, bool) {
			if len(raw)%2 == 0 {
				return nil, false
			}
			return static(q, raw, dst)
		},
	}
	s, err := NewStreamServer(StreamConfig{Config: Config{Handler: h}, ReadTimeout: 50 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() { s.Close(); <-done }()

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ids := map[uint16]bool{}
		for b := in; len(b) >= 2+headerLen; {
			n := int(binary.BigEndian.Uint16(b))
			if n > len(b)-2 {
				break
			}
			ids[binary.BigEndian.Uint16(b[2:])] = true
			b = b[2+n:]
		}
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Fatalf("reading: %v (server hung?)", err)
		}
		for len(out) >= 2 {
			n := int(binary.BigEndian.Uint16(out))
			if n > len(out)-2 {
				t.Fatalf("partial frame of %d bytes", n)
			}
			m := new(dns.Msg)
			if err := m.Unpack(out[2 : 2+n]); err != nil || !m.Response || !ids[m.Id] {
				t.Fatalf("bad response frame %v: %v", m, err)
			}
			out = out[2+n:]
		}
		if len(out) != 0 {
			t.Fatal("trailing byte")
		}
	})
}

// isReset reports a connection reset: the server may close with unread input.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
