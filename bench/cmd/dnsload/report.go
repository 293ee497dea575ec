package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func summarize(o options, ts []*tally, start time.Time, cpu time.Duration) error {
	var lat []time.Duration
	var rcodes [16]int
	var errs []error
	lost := 0
	end := start
	for _, t := range ts {
		lat = append(lat, t.lat...)
		for k, v := range t.rcodes {
			rcodes[k] += v
		}
		lost += t.lost
		errs = append(errs, t.errs...)
		if t.last.After(end) {
			end = t.last
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))]) / 1e6
	}
	elapsed := end.Sub(start)
	qps := float64(len(lat)) / max(elapsed.Seconds(), 1e-9)
	var rc []string
	for k, v := range rcodes {
		if v > 0 {
			rc = append(rc, fmt.Sprintf("%s %d", dns.RcodeToString[k], v))
		}
	}
	cpuPer := "-"
	if o.pid > 0 && len(lat) > 0 {
		cpuPer = fmt.Sprintf("%.2f", float64(cpu.Microseconds())/float64(len(lat)))
	}
	fmt.Fprintf(os.Stderr, "dnsload %s %s: %d answered in %.2fs = %.0f qps, lost %d, errors %d, rcodes [%s], latency p50 %.3f ms p99 %.3f ms, server CPU %s µs/query\n",
		o.proto, o.addr, len(lat), elapsed.Seconds(), qps, lost, len(errs), strings.Join(rc, ", "), pct(0.5), pct(0.99), cpuPer)
	fmt.Printf("%.0f %d %.3f %.3f %s\n", qps, lost+len(errs), pct(0.5), pct(0.99), cpuPer)
	if len(errs) > 0 {
		return fmt.Errorf("%d queries failed, first: %w", len(errs), errs[0])
	}
	if rcodes[dns.RcodeSuccess] != len(lat) {
		return errors.New("not every answer was NOERROR: [" + strings.Join(rc, ", ") + "]")
	}
	return nil
}

// cpuTime is a process's user+system CPU time from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // utime, field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // stime, field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
