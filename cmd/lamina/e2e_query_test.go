package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/laminadns/lamina/internal/testenv"
)

// TestQueryEveryTransport runs `lamina query -trace` against a Lamina
// serving every transport, with and without ECH, and checks that what it
// prints matches what the server's /layers counted for each listener.
func TestQueryEveryTransport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p53, pdot, pdoh := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	cfg := writeConfig(t, fmt.Sprintf(`
listeners:
  - {name: udp, url: "udp://127.0.0.1:%[1]d"}
  - {name: tcp, url: "tcp://127.0.0.1:%[1]d"}
  - {name: dot, url: "tls://127.0.0.1:%[2]d"}
  - {name: doq, url: "quic://127.0.0.1:%[2]d"}
  - {name: doh, url: "https://127.0.0.1:%[3]d/dns-query"}
  - {name: doh3, url: "h3://127.0.0.1:%[3]d/dns-query"}
tls:
  state_dir: %[4]s
  ech: {public_name: public.lamina.test}
resolver:
  service_name: dns.lamina.test
local_zones:
  - name: lab.test
    records: ["www IN A 192.0.2.7"]
`, p53, pdot, pdoh, dir))
	p := startLamina(t, fmt.Sprintf("127.0.0.1:%d", p53), "-config", cfg)
	resp, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		TLS struct {
			ECHConfigList string `json:"ech_config_list"`
		} `json:"tls"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.TLS.ECHConfigList == "" {
		t.Fatal("no ECH config list in /status")
	}
	ca := filepath.Join(dir, "tls", "ca.pem")
	for _, tc := range []struct {
		listener, url string
		ech           bool
	}{
		{"udp", fmt.Sprintf("udp://127.0.0.1:%d", p53), false},
		{"tcp", fmt.Sprintf("tcp://127.0.0.1:%d", p53), false},
		{"dot", fmt.Sprintf("tls://127.0.0.1:%d", pdot), true},
		{"doq", fmt.Sprintf("quic://127.0.0.1:%d", pdot), true},
		{"doh", fmt.Sprintf("https://127.0.0.1:%d/dns-query", pdoh), false},
		{"doh3", fmt.Sprintf("h3://127.0.0.1:%d/dns-query", pdoh), true},
	} {
		args := []string{"query", "-server", tc.url, "-ca", ca, "-server-name", "dns.lamina.test", "-trace", "-admin", p.admin}
		if tc.ech {
			args = append(args, "-ech", st.TLS.ECHConfigList)
		}
		out, err := exec.Command(laminaBin, append(args, "www.lab.test")...).CombinedOutput()
		s := string(out)
		wants := []string{"192.0.2.7", "status: NOERROR", "transport " + strings.SplitN(tc.url, ":", 2)[0], "local zone lab.test."}
		if tc.listener == "udp" || tc.listener == "tcp" {
			wants = append(wants, "TLS      none")
		} else {
			wants = append(wants, "TLS 1.3", fmt.Sprintf("ECH      accepted %v", tc.ech))
		}
		for _, w := range wants {
			if err != nil || !strings.Contains(s, w) {
				t.Errorf("%s: %v: no %q in\n%s", tc.listener, err, w, s)
				break
			}
		}
	}

	// The server counted each query under the protection the client saw.
	resp, err = http.Get("http://" + p.admin + "/layers")
	if err != nil {
		t.Fatal(err)
	}
	var v layersView
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range v.Clients {
		var parts []string
		for _, s := range c.Sessions {
			parts = append(parts, fmt.Sprintf("%s/%s/ech=%v/%d", s.Transport, s.TLSVersion, s.ECHAccepted, s.Queries))
		}
		got[c.Listener] = strings.Join(parts, ",")
	}
	want := map[string]string{
		"udp": "udp//ech=false/1", "tcp": "tcp//ech=false/1",
		"dot": "tls/TLS 1.3/ech=true/1", "doq": "quic/TLS 1.3/ech=true/1",
		"doh": "https/TLS 1.3/ech=false/1", "doh3": "h3/TLS 1.3/ech=true/1",
	}
	for l, w := range want {
		if got[l] != w {
			t.Errorf("/layers client %s: %q, want %q", l, got[l], w)
		}
	}

	// -ech-from-dns finds the config in the server's own SVCB records
	// (_dns.dns.lamina.test, RFC 9461), asked over plain DNS.
	out, err := exec.Command(laminaBin, "query", "-server", fmt.Sprintf("https://dns.lamina.test:%d/dns-query", pdoh), "-ip", "127.0.0.1",
		"-bootstrap", fmt.Sprintf("udp://127.0.0.1:%d", p53), "-ech-from-dns", "-ca", ca, "-trace", "www.lab.test").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.7") || !strings.Contains(string(out), "ECH      accepted true") {
		t.Errorf("-ech-from-dns: %v\n%s", err, out)
	}
}

func TestQueryUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"query"}, exitConfig, "exactly one NAME"},
		{[]string{"query", "-type", "BOGUS", "x.test"}, exitConfig, "unknown type"},
		{[]string{"query", "-server", "ftp://x", "x.test"}, exitConfig, "scheme"},
		{[]string{"query", "-h"}, exitOK, "-ech-from-dns"},
	} {
		var out strings.Builder
		if code := run(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d and %q", tc.args, code, out.String(), tc.code, tc.out)
		}
	}
}
