package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

func dial(args []string) error {
	fs := flag.NewFlagSet("dial", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:853", "DoT server ip:port")
	pid := fs.Int("pid", 0, "server process id (required)")
	n := fs.Int("n", 10000, "connections to open")
	par := fs.Int("c", 32, "connections opened in parallel")
	label := fs.String("label", "server", "name printed with the result")
	settle := fs.Duration("settle", 3*time.Second, "wait before reading RSS")
	fs.Parse(args)
	if *pid <= 0 {
		return errors.New("-pid is required")
	}
	rss0, fd0, err := procStats(*pid)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	failed := 0
	start := time.Now()
	var wg sync.WaitGroup
	for range *par {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				c, err := open(*addr, i)
				if err != nil {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	opened := time.Since(start)
	time.Sleep(*settle)
	rss1, fd1, err := procStats(*pid)
	if err != nil {
		return err
	}
	// Still open? A read that times out means the server kept the connection.
	alive := 0
	for _, c := range conns {
		if c == nil {
			continue
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				alive++
			}
		}
		c.Close()
	}
	fmt.Printf("%-8s %d DoT connections opened in %.1fs (%d failed), %d still open after %v; server fds +%d; RSS %.1f -> %.1f MiB: %.0f bytes per idle connection\n",
		*label, *n-failed, opened.Seconds(), failed, alive, *settle, fd1-fd0,
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/float64(max(alive, 1)))
	if failed > 0 {
		return fmt.Errorf("%d connections failed, first: %w", failed, firstErr)
	}
	if alive < *n*99/100 {
		return fmt.Errorf("only %d of %d connections were still open: the figure is not per-connection", alive, *n)
	}
	return nil
}

// open makes one DoT connection and asks one query on it.
func open(addr string, i int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"dot"}})
	c.SetDeadline(time.Now().Add(10 * time.Second))
	m := new(dns.Msg)
	m.SetQuestion(fmt.Sprintf("h%d.bench.test.", i%1000), dns.TypeA)
	dc := &dns.Conn{Conn: c}
	if err := dc.WriteMsg(m); err != nil {
		c.Close()
		return nil, err
	}
	r, err := dc.ReadMsg()
	if err != nil {
		c.Close()
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		c.Close()
		return nil, fmt.Errorf("answer %s", dns.RcodeToString[r.Rcode])
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// procStats reads a process's resident set size and open descriptor count.
func procStats(pid int) (rss int64, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, len(ents), err
}
