package doh

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

func TestKdig(t *testing.T) {
	testenv.Tool(t, "kdig")
	e := start(t, false, Config{})
	base := []string{"@127.0.0.1", "-p", strconv.Itoa(e.port), "+tls-ca=" + e.p.CAFile(), "+tls-hostname=" + tlsconftest.ServiceName}
	for method, session := range map[string]string{"+https=/dns-query": "HTTP/2-POST", "+https-get=/dns-query": "HTTP/2-GET"} {
		out := tlsconftest.Run(t, "kdig", append(base, method, "site.example.test", "A")...)
		for _, w := range []string{"status: NOERROR", "127.0.0.1", session, "status: 200", "Received 468 B"} {
			if !strings.Contains(out, w) {
				t.Fatalf("kdig %s output lacks %q:\n%s", method, w, out)
			}
		}
	}
	if n := len(e.h.Seen()); n != 2 {
		t.Errorf("handler saw %d queries, want 2", n)
	}
}

func TestDig(t *testing.T) {
	testenv.Tool(t, "dig")
	e := start(t, false, Config{})
	for _, method := range []string{"+https", "+https-get=/dns-query"} {
		out := tlsconftest.Run(t, "dig", "@127.0.0.1", "-p", strconv.Itoa(e.port), method, "+tls-ca="+e.p.CAFile(),
			"site.example.test", "A")
		for _, w := range []string{"status: NOERROR", "127.0.0.1", "(HTTPS"} {
			if !strings.Contains(out, w) {
				t.Fatalf("dig %s output lacks %q:\n%s", method, w, out)
			}
		}
	}
}

// TestCurl: curl resolves a name that only Lamina knows through DoH and
// fetches a page from a local HTTP server by that name.
func TestCurl(t *testing.T) {
	testenv.Tool(t, "curl")
	e := start(t, false, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello from " + r.Host))
	})}
	go page.Serve(ln)
	defer page.Close()
	site := "http://site.example.test:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/"
	out := tlsconftest.Run(t, "curl", "-sS", "--max-time", "20", "--cacert", e.p.CAFile(), "--doh-url", e.url, site)
	if !strings.Contains(out, "hello from site.example.test") {
		t.Fatalf("curl: %s", out)
	}
	var doh int
	for _, s := range e.h.Seen() {
		if s.Name == tlsconftest.SiteName && s.Transport == resolver.HTTPS {
			doh++
		}
	}
	if doh == 0 {
		t.Error("the name was not resolved through DoH")
	}
}

func TestDnsperf(t *testing.T) {
	testenv.Tool(t, "dnsperf")
	e := start(t, false, Config{})
	lines := []string{"site.example.test A", "nope.example.test AAAA"}
	for _, method := range []string{"GET", "POST"} {
		r := tlsconftest.Dnsperf(t, "doh", e.port, lines, "-l", "2", "-Q", "300", "-c", "2",
			"-O", "doh-uri=https://"+tlsconftest.ServiceName+":"+strconv.Itoa(e.port)+"/dns-query", "-O", "doh-method="+method)
		if r.Lost != 0 || r.Completed == 0 {
			t.Fatalf("dnsperf -m doh %s lost %d of %d:\n%s", method, r.Lost, r.Sent, r.Output)
		}
		t.Logf("dnsperf -m doh %s: %d completed, %.0f qps", method, r.Completed, r.QPS)
	}
}
