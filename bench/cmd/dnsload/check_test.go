package main

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestCheck(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("h1.bench.test.", dns.TypeA)
	q.Id = 0
	qb, _ := q.Pack()
	answer := func(mod func(*dns.Msg)) []byte {
		r := new(dns.Msg)
		r.SetReply(q)
		r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "h1.bench.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(10, 0, 0, 1)}}
		if mod != nil {
			mod(r)
		}
		b, err := r.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name, err string
		resp      []byte
	}{
		{"good", "", answer(nil)},
		{"nxdomain without records", "", answer(func(r *dns.Msg) { r.Rcode, r.Answer = dns.RcodeNameError, nil })},
		{"query echoed", "not an answer", qb},
		{"short", "not an answer", qb[:10]},
		{"other name", "another question", answer(func(r *dns.Msg) { r.Question[0].Name = "h2.bench.test." })},
		{"other type", "another question", answer(func(r *dns.Msg) { r.Question[0].Qtype = dns.TypeAAAA })},
		{"empty noerror", "without answer", answer(func(r *dns.Msg) { r.Answer = nil })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(qb, tt.resp)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("check: %v, want %q", err, tt.err)
			}
		})
	}
}
