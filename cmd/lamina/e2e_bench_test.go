package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/laminadns/lamina/ipsec/ike/iketest"
)

// BenchmarkE2EProxyDownload downloads 100 MiB from nginx behind the gateway
// through Lamina's SOCKS5 proxy and tunnel (TLS inside ESP-in-UDP, with
// strongSwan's userspace ESP on the other side), and the same file over the
// same veth without IPsec (nginx on the gateway's outer address), and
// reports both rates, their ratio and Lamina's CPU time per MB.
//
//	go test ./cmd/lamina -run '^$' -bench E2EProxyDownload -benchtime 3x
func BenchmarkE2EProxyDownload(b *testing.B) {
	e := startE2E(b)
	const size = 100 << 20
	f, err := os.Create(filepath.Join(e.dir, "www", "big.bin"))
	if err != nil {
		b.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	fetch := func(args ...string) float64 {
		out, err := e.in(append([]string{"curl", "-sS", "-o", "/dev/null", "--max-time", "120", "--cacert", e.bundle,
			"-w", "%{size_download} %{time_total}"}, args...)...).Output()
		fs := strings.Fields(string(out))
		if err != nil || len(fs) != 2 || fs[0] != strconv.Itoa(size) {
			b.Fatalf("curl %v: %v %q", args, err, out)
		}
		secs, _ := strconv.ParseFloat(fs[1], 64)
		return secs
	}
	// charon does the gateway's ESP in userspace: its CPU is the other
	// side's cost.
	var charon int
	pids, _ := exec.Command(e.ip, "netns", "pids", e.lab.GW).Output()
	for _, p := range strings.Fields(string(pids)) {
		if comm, _ := os.ReadFile("/proc/" + p + "/comm"); strings.TrimSpace(string(comm)) == "charon" {
			charon, _ = strconv.Atoi(p)
		}
	}
	if charon == 0 {
		b.Fatal("charon not found in the gateway namespace")
	}
	var tunnel, plain, cpu, gwCPU float64
	n := 0
	for b.Loop() {
		c0, g0 := procCPU(b, e.pid), procCPU(b, charon)
		tunnel += fetch("--proxy", "socks5h://127.0.0.1:1080", "https://app.corp.example/big.bin")
		cpu += procCPU(b, e.pid) - c0
		gwCPU += procCPU(b, charon) - g0
		plain += fetch("--resolve", "app.corp.example:443:"+iketest.GatewayAddr.String(), "https://app.corp.example/big.bin")
		n++
	}
	mb := float64(n) * size / 1e6
	b.ReportMetric(mb/tunnel, "tunnel-MB/s")
	b.ReportMetric(mb/plain, "plain-MB/s")
	b.ReportMetric(plain/tunnel, "tunnel/plain-rate")
	b.ReportMetric(cpu*1000/mb, "lamina-cpu-ms/MB")
	b.ReportMetric(gwCPU*1000/mb, "charon-cpu-ms/MB")
}

// procCPU is a process's user+system CPU time in seconds (/proc/PID/stat
// fields 14 and 15, in USER_HZ = 100 ticks).
func procCPU(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 on
	ut, _ := strconv.ParseFloat(fs[11], 64)
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (ut + st) / 100
}
