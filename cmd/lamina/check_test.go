package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/laminadns/lamina/config"
)

// TestConfigsLoad loads every example in configs/ (and runs `lamina check` on
// it as a user would).
func TestConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("configs/*.yaml: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := (source{file: f}).load(); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(laminaBin, "check", "-config", f).CombinedOutput()
			if err != nil {
				t.Fatalf("lamina check: %v\n%s", err, out)
			}
		})
	}
	// The embedded default is the file on disk.
	c, err := (source{}).load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 6 || c.Listeners[0].Parsed.Addr.Port() != 8053 || c.Admin.Address != config.DefaultAdminAddress {
		t.Errorf("default config: %+v %+v", c.Listeners, c.Admin)
	}
}

// TestReferenceDocumentsEveryKey keeps configs/reference.yaml complete: every
// key of the schema appears in it.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	ref, err := os.ReadFile("../../configs/reference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for ty.Kind() == reflect.Slice || ty.Kind() == reflect.Pointer {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] || ty.PkgPath() != reflect.TypeFor[config.Config]().PkgPath() {
			return
		}
		seen[ty] = true
		for i := range ty.NumField() {
			f := ty.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if !regexp.MustCompile(`(?m)^[ -]*` + regexp.QuoteMeta(tag) + `:`).Match(ref) {
				t.Errorf("reference.yaml does not document %s.%s (%s)", ty.Name(), f.Name, tag)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[config.Config]())
}

// TestCheckRejectsBrokenConfig: file:line: field: problem, exit status 2.
func TestCheckRejectsBrokenConfig(t *testing.T) {
	bad := writeConfig(t, `listeners:
  - url: udp://127.0.0.1:8053
  - url: tcpp://127.0.0.1:8053
upstream_groups:
  - name: g
    strategy: fastest-ever
    upstreams: [udp://192.0.2.1]
routes:
  - {zone: corp.example, group: nope}
cache:
  max_ttl: -5s
`)
	cmd := exec.Command(laminaBin, "check", "-config", bad)
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit status %d, want 2", code)
	}
	for _, want := range []string{
		bad + `:3: listeners[1].url: unknown scheme "tcpp"`,
		bad + `:6: upstream_groups[0].strategy: unknown strategy "fastest-ever"`,
		bad + `:9: routes[0].group: unknown upstream group "nope"`,
		bad + `:11: cache.max_ttl: negative duration "-5s"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	cmd = exec.Command(laminaBin, "check", "-config", filepath.Join(t.TempDir(), "missing.yaml"))
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), "no such file") {
		t.Errorf("missing file: exit %d, output %q", code, out)
	}

	// serve refuses the same file before binding anything.
	cmd = exec.Command(laminaBin, "serve", "-config", bad)
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), bad+":3:") {
		t.Errorf("serve with a broken config: exit %d\n%s", code, out)
	}
}

// TestCommandLine covers version, -h and usage errors in-process.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{[]string{"version"}, 0, "lamina "},
		{[]string{"version", "-h"}, 0, "Usage: lamina version"},
		{[]string{"ech", "keygen", "-h"}, 0, "-public-name name"},
		{[]string{"ech", "keygen"}, 2, "a public name is needed"},
		{[]string{"-h"}, 0, "lamina serve [-config FILE]"},
		{[]string{"serve", "-h"}, 0, "-upstream URL"},
		{[]string{"check", "-h"}, 0, "check -config FILE"},
		{[]string{"check"}, 2, "-config FILE is required"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{nil, 2, "Usage:"},
		{[]string{"serve", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"serve", "-listen", "udp://127.0.0.1:0"}, 2, "-listen udp://127.0.0.1:0: port \"0\" out of range"},
		{[]string{"serve", "-listen", "udp://127.0.0.1:1", "-admin", "nowhere"}, 2, `-admin: "nowhere" is not host:port`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("lamina %v: exit %d, output:\n%s%s\nwant exit %d and %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.out)
		}
	}
}
