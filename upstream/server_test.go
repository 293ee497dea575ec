package upstream

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is an in-process DNS server on 127.0.0.1 (UDP and TCP on one
// port) whose answers depend on the query name:
//
//	qN.test.        A 10.0.x.y encoding N, so concurrent answers can be told apart
//	mismatch.test.  (UDP) first a wrong ID, then a wrong question, then the answer
//	tc.test.        (UDP) an empty TC answer; (TCP) a large TXT answer
//	slow.test.      no answer until the server stops
//	servfail.test.  SERVFAIL
//	dns.test.       A 127.0.0.1, no AAAA (bootstrap of the TLS test servers)
//	anything else   A 192.0.2.1
type testServer struct {
	addr    netip.AddrPort
	udp     *dns.Server
	tcp     *dns.Server
	stop    chan struct{}
	stopped sync.Once
	queries atomic.Int64
	echList atomic.Pointer[[]byte] // published in _dns.dns.test SVCB when set
	// closeAfterAnswer makes the DoQ server close the connection after
	// each answer, as a server closing idle connections would.
	closeAfterAnswer atomic.Bool
	shortIdle        atomic.Bool              // QUIC servers time out idle connections after 300 ms
	ddr              atomic.Pointer[[]dns.RR] // answer to _dns.resolver.arpa SVCB
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	s := &testServer{
		addr: netip.MustParseAddrPort(pc.LocalAddr().String()),
		stop: make(chan struct{}),
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server; later queries get no answer (UDP: port
// unreachable, TCP: connection refused).
func (s *testServer) Close() {
	s.stopped.Do(func() {
		close(s.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.udp.ShutdownContext(ctx)
		s.tcp.ShutdownContext(ctx)
	})
}

func (s *testServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	udp := w.LocalAddr().Network() == "udp"
	if udp && strings.EqualFold(req.Question[0].Name, "mismatch.test.") {
		bad := s.reply(req, false)
		bad.Id ^= 0x5a5a
		w.WriteMsg(bad)
		bad = s.reply(req, false)
		bad.Question[0].Name = "other.test."
		w.WriteMsg(bad)
		w.Write([]byte{1, 2, 3})
	}
	if resp := s.reply(req, udp); resp != nil {
		w.WriteMsg(resp)
	}
}

// reply computes the answer to req, nil for none; see testServer.
func (s *testServer) reply(req *dns.Msg, udp bool) *dns.Msg {
	s.queries.Add(1)
	q := req.Question[0]
	resp := new(dns.Msg)
	resp.SetReply(req)
	name := strings.ToLower(q.Name)
	switch {
	case name == "slow.test.":
		<-s.stop
		return nil
	case name == "servfail.test.":
		resp.Rcode = dns.RcodeServerFailure
	case name == "_dns.dns.test." && q.Qtype == dns.TypeSVCB && s.echList.Load() != nil:
		resp.Answer = append(resp.Answer, &dns.SVCB{
			Hdr:      dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSVCB, Class: dns.ClassINET, Ttl: 60},
			Priority: 1, Target: "dns.test.",
			Value: []dns.SVCBKeyValue{&dns.SVCBAlpn{Alpn: []string{"dot"}}, &dns.SVCBECHConfig{ECH: *s.echList.Load()}},
		})
	case name == "_dns.resolver.arpa." && s.ddr.Load() != nil:
		resp.Answer = *s.ddr.Load()
	case name == "dns.test.": // the encrypted test servers' name, for bootstrap
		if q.Qtype == dns.TypeA {
			resp.Answer = append(resp.Answer, testA(q.Name, "127.0.0.1"))
		}
	case name == "mismatch.test.":
		resp.Answer = append(resp.Answer, testA(q.Name, "192.0.2.7"))
	case name == "tc.test." && udp:
		resp.Truncated = true
	case name == "tc.test.":
		for i := range 20 {
			resp.Answer = append(resp.Answer, &dns.TXT{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{strings.Repeat(strconv.Itoa(i%10), 200)},
			})
		}
	case strings.HasPrefix(name, "q") && strings.HasSuffix(name, ".test."):
		n, _ := strconv.Atoi(strings.TrimSuffix(name[1:], ".test."))
		resp.Answer = append(resp.Answer, testA(q.Name, indexIP(n)))
	default:
		resp.Answer = append(resp.Answer, testA(q.Name, "192.0.2.1"))
	}
	return resp
}

func indexIP(n int) string {
	return netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}).String()
}

func testA(name, ip string) dns.RR {
	return &dns.A{
		Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A:   net.ParseIP(ip).To4(),
	}
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// answerIP returns the first A record's address in resp, or "".
func answerIP(resp *dns.Msg) string {
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			return a.A.String()
		}
	}
	return ""
}
