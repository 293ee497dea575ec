package h2

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// TestKdig: kdig's DoH client (libnghttp2 + GnuTLS), POST and GET.
func TestKdig(t *testing.T) {
	testenv.Tool(t, "kdig")
	e := start(t, Config{})
	base := []string{"@127.0.0.1", "-p", strconv.Itoa(e.port), "+tls-ca=" + e.p.CAFile(), "+tls-hostname=" + tlsconftest.ServiceName}
	for _, method := range []string{"+https=/dns-query", "+https-get=/dns-query"} {
		for range 2 { // the second one is a fast-path answer (no EDNS: +noedns)
			out := tlsconftest.Run(t, "kdig", append(base, method, "+noedns", "h7.bench.test", "A")...)
			for _, w := range []string{"status: NOERROR", "10.0.0.7", "status: 200"} {
				if !strings.Contains(out, w) {
					t.Fatalf("kdig %s output lacks %q:\n%s", method, w, out)
				}
			}
		}
		// Padded queries (kdig pads over TLS) get padded answers (RFC 8467).
		out := tlsconftest.Run(t, "kdig", append(base, method, "h8.bench.test", "A")...)
		if !strings.Contains(out, "10.0.0.8") || !strings.Contains(out, "Received 468 B") {
			t.Fatalf("kdig %s padded:\n%s", method, out)
		}
	}
	if e.h.wire.Load() < 2 {
		t.Errorf("fast path answered %d, want ≥ 2", e.h.wire.Load())
	}
}

// TestCurl: curl --http2 (libcurl + nghttp2) GET and POST.
func TestCurl(t *testing.T) {
	testenv.Tool(t, "curl")
	e := start(t, Config{})
	raw := query("h9.bench.test.", dns.TypeA)
	resolve := tlsconftest.ServiceName + ":" + strconv.Itoa(e.port) + ":127.0.0.1"
	dir := t.TempDir()
	body := dir + "/q"
	writeFile(t, body, raw)
	for _, args := range [][]string{
		{getURL(e.url, raw)},
		{"-H", "Content-Type: application/dns-message", "--data-binary", "@" + body, e.url},
	} {
		out := dir + "/a"
		tlsconftest.Run(t, "curl", append([]string{"-sS", "--http2", "--max-time", "10", "--cacert", e.p.CAFile(), "--resolve", resolve,
			"-o", out, "-D", dir + "/h"}, args...)...)
		m := new(dns.Msg)
		if err := m.Unpack(readFile(t, out)); err != nil || len(m.Answer) != 1 {
			t.Fatalf("curl %v: %v %v", args, err, m)
		}
		if h := string(readFile(t, dir+"/h")); !strings.HasPrefix(h, "HTTP/2 200") || !strings.Contains(h, "cache-control: max-age=300") {
			t.Fatalf("curl headers:\n%s", h)
		}
	}
}

// TestDnsperf: dnsperf -m doh (nghttp2 + OpenSSL, one answer per SSL_read)
// loses nothing at a moderate rate with many outstanding queries on few
// connections, the case that stalls Go's stock HTTP/2 server; GET and POST.
func TestDnsperf(t *testing.T) {
	testenv.Tool(t, "dnsperf")
	e := start(t, Config{})
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("h%d.bench.test A", i))
	}
	lines = append(lines, "nope.bench.test AAAA")
	uri := "doh-uri=https://" + tlsconftest.ServiceName + ":" + strconv.Itoa(e.port) + "/dns-query"
	for _, method := range []string{"GET", "POST"} {
		r := tlsconftest.Dnsperf(t, "doh", e.port, lines, "-l", "2", "-Q", "2000", "-c", "2", "-q", "100",
			"-O", uri, "-O", "doh-method="+method)
		if r.Lost != 0 || r.Completed < 1000 {
			t.Fatalf("dnsperf -m doh %s lost %d of %d:\n%s", method, r.Lost, r.Sent, r.Output)
		}
		t.Logf("dnsperf -m doh %s: %d completed, %.0f qps", method, r.Completed, r.QPS)
	}
	if e.h.wire.Load() == 0 {
		t.Error("no fast-path answers")
	}
}

var h2loadDone = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)

// TestH2load: nghttp2's h2load, 4 connections × 20 streams, every request
// succeeds.
func TestH2load(t *testing.T) {
	testenv.Tool(t, "h2load")
	e := start(t, Config{})
	u := getURL("https://127.0.0.1:"+strconv.Itoa(e.port)+"/dns-query", query("h1.bench.test.", dns.TypeA))
	out := tlsconftest.Run(t, "h2load", "-n", "4000", "-c", "4", "-m", "20", u)
	m := h2loadDone.FindStringSubmatch(out)
	if m == nil || m[1] != "4000" || m[3] != "4000" || m[4] != "0" || !strings.Contains(out, "status codes: 4000 2xx") {
		t.Fatalf("h2load:\n%s", out)
	}
}
