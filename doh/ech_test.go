package doh

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/tlsconf"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// TestECH is the Go ECH client of the issue: it learns the ECHConfigList
// from Lamina's own SVCB answer, then queries over HTTP/2 and HTTP/3 with ECH
// accepted on both sides; a stale config is rejected with retry configs that
// work; after rotation the old config still works during the grace period.
func TestECH(t *testing.T) {
	e := start(t, true, Config{})
	list := e.echFromSelf(t)
	site := query(tlsconftest.SiteName, dns.TypeA)

	clients := map[string]func([]byte) *http.Client{
		"h2": func(l []byte) *http.Client { return e.h2Client(t, l) },
		"h3": func(l []byte) *http.Client { return e.h3Client(t, l) },
	}
	for name, client := range clients {
		m, r := post(t, client(list), e.url, site)
		if len(m.Answer) != 1 || r.TLS == nil || !r.TLS.ECHAccepted {
			t.Fatalf("%s: ECH not accepted (answer %v)", name, m)
		}
		if s := e.h.Seen(); !s[len(s)-1].ECHAccepted {
			t.Errorf("%s: server-side query not marked ECHAccepted", name)
		}
	}

	// A config for a key the server never had: rejected, retry succeeds.
	stale, err := tlsconf.GenerateECHKey(tlsconftest.PublicName, 200)
	if err != nil {
		t.Fatal(err)
	}
	for name, client := range clients {
		_, err := client(tlsconf.MarshalECHConfigList(stale.Config)).Post(e.url, mimeDNSMessage, bytes.NewReader(pack(t, site)))
		rej, ok := isECHRejection(err)
		if !ok {
			t.Fatalf("%s: stale config: %v, want ECHRejectionError", name, err)
		}
		if !bytes.Equal(rej.RetryConfigList, list) {
			t.Errorf("%s: retry configs differ from the published list", name)
		}
		if _, r := post(t, client(rej.RetryConfigList), e.url, site); !r.TLS.ECHAccepted {
			t.Errorf("%s: retry not accepted", name)
		}
	}

	// Rotation: the new list is published, the old one still works.
	if err := e.p.RotateECH(); err != nil {
		t.Fatal(err)
	}
	if fresh := e.echFromSelf(t); bytes.Equal(fresh, list) {
		t.Fatal("SVCB answer still carries the old key after rotation")
	}
	for name, client := range clients {
		if _, r := post(t, client(list), e.url, site); !r.TLS.ECHAccepted {
			t.Errorf("%s: old key refused during its grace period", name)
		}
	}
}
