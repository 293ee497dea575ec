package tlsconftest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf"
)

// Names used by the fixtures, as in the lab conventions of the reference page.
const (
	ServiceName = "dns.example.test"
	PublicName  = "public.example.test"
	SiteName    = "site.example.test."
)

// Provider returns a Provider for ServiceName and SiteName (and 127.0.0.1,
// ::1) whose state lives in a temporary directory; ech turns ECH on with
// PublicName. SiteName is covered so that tests can serve a web page with
// the same certificate.
func Provider(t testing.TB, ech bool) *tlsconf.Provider {
	t.Helper()
	cfg := tlsconf.Config{StateDir: t.TempDir(), Names: []string{ServiceName, strings.TrimSuffix(SiteName, ".")}}
	if ech {
		cfg.ECH.PublicName = PublicName
	}
	p, err := tlsconf.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Pool returns a pool trusting p's local CA.
func Pool(t testing.TB, p *tlsconf.Provider) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no CA certificate in", p.CAFile())
	}
	return pool
}

// ClientConfig returns a client config that verifies ServiceName against p's
// CA, offers alpn, and uses echList (an ECHConfigList) when it is non-nil.
func ClientConfig(t testing.TB, p *tlsconf.Provider, alpn []string, echList []byte) *tls.Config {
	return &tls.Config{
		RootCAs:                        Pool(t, p),
		ServerName:                     ServiceName,
		NextProtos:                     alpn,
		MinVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: echList,
	}
}

// ECHFromAnswer returns the ech SvcParam of the first SVCB or HTTPS record in
// m that has one.
func ECHFromAnswer(m *dns.Msg) []byte {
	for _, rr := range m.Answer {
		var kvs []dns.SVCBKeyValue
		switch r := rr.(type) {
		case *dns.SVCB:
			kvs = r.Value
		case *dns.HTTPS:
			kvs = r.Value
		}
		for _, kv := range kvs {
			if e, ok := kv.(*dns.SVCBECHConfig); ok {
				return e.ECH
			}
		}
	}
	return nil
}

// Static is a resolver.Handler answering SiteName A 127.0.0.1 (TTL 300),
// the Self records for their owner names, and NXDOMAIN for everything else
// (with an SOA of TTL 60). It records the queries it saw.
type Static struct {
	Self func() []dns.RR // may be nil

	mu   sync.Mutex
	seen []Seen
}

// Seen is what Static remembers of a query; it keeps no reference to it.
type Seen struct {
	Name        string
	Transport   resolver.Transport
	ECHAccepted bool
}

// ServeDNS implements resolver.Handler.
func (s *Static) ServeDNS(_ context.Context, q *resolver.Query) (*dns.Msg, error) {
	question := q.Msg.Question[0]
	s.mu.Lock()
	s.seen = append(s.seen, Seen{question.Name, q.Transport, q.TLS != nil && q.TLS.ECHAccepted})
	s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(q.Msg)
	m.RecursionAvailable = true
	if strings.EqualFold(question.Name, SiteName) {
		if question.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(SiteName + " 300 IN A 127.0.0.1")
			m.Answer = append(m.Answer, rr)
		}
		return m, nil
	}
	if s.Self != nil {
		for _, rr := range s.Self() {
			if strings.EqualFold(rr.Header().Name, question.Name) && rr.Header().Rrtype == question.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) > 0 {
			return m, nil
		}
	}
	m.Rcode = dns.RcodeNameError
	soa, _ := dns.NewRR("example.test. 60 IN SOA ns.example.test. host.example.test. 1 3600 600 86400 60")
	m.Ns = append(m.Ns, soa)
	return m, nil
}

// Seen returns what was seen so far, oldest first.
func (s *Static) Seen() []Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Seen(nil), s.seen...)
}
