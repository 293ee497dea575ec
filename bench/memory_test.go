package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/cache"
)

// TestCacheRSSPerEntry fills a real cache with 1,000,000 A answers, shaped as
// an upstream sends them, and reports the process's RSS growth per entry
// against issue 3's budget of 300 bytes. Two RSS figures are printed: as
// filled (what the process holds with the GC left alone, GOGC=100) and after
// a GC that returns free pages to the OS; the budget applies to the latter,
// the memory the entries keep. It needs LAMINA_BENCH_MEM=1 (bench/run mem):
// it allocates about half a gigabyte.
func TestCacheRSSPerEntry(t *testing.T) {
	if os.Getenv("LAMINA_BENCH_MEM") == "" {
		t.Skip("set LAMINA_BENCH_MEM=1 (bench/run mem) to fill a million entries")
	}
	const n = 1_000_000
	c, err := cache.New(cache.Config{MaxEntries: 2 * n, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := make([]string, n)
	for i := range names {
		names[i] = benchName(i)
	}
	req := new(dns.Msg)
	req.SetQuestion("x.", dns.TypeA)
	req.SetEdns0(1232, false)
	a := &dns.A{Hdr: dns.RR_Header{Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: []byte{10, 0, 0, 1}}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Answer = []dns.RR{a}
	resp.SetEdns0(1232, false)

	rss0, heap0 := settle()
	start := time.Now()
	for i, name := range names {
		req.Question[0].Name, resp.Question[0].Name, a.Hdr.Name = name, name, name
		a.A[2], a.A[3] = byte(i>>8), byte(i)
		c.Set(req, resp)
	}
	elapsed := time.Since(start)
	rssFilled := rssBytes(t)
	rss1, heap1 := settle()
	st := c.Stats()
	if st.Entries != n {
		t.Fatalf("%d entries cached, want %d (evictions %d)", st.Entries, n, st.Evictions)
	}
	perFilled := float64(rssFilled-rss0) / n
	per := float64(rss1-rss0) / n
	t.Logf("%d A answers cached in %v (%.2f µs/Set)", n, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/n)
	t.Logf("RSS growth: %.0f bytes/entry after GC (%.0f MiB); %.0f bytes/entry as filled; heap in use %.0f bytes/entry; cache's own account %.0f bytes/entry",
		per, float64(rss1-rss0)/(1<<20), perFilled, float64(heap1-heap0)/n, float64(st.Bytes)/n)
	if per > 300 {
		t.Errorf("RSS grew %.0f bytes per cached entry, budget 300", per)
	}
	runtime.KeepAlive(c)
	runtime.KeepAlive(names)
}

// settle collects garbage, returns free pages to the OS, and reads RSS and
// the heap in use.
func settle() (rss, heap uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return rssBytes(nil), m.HeapInuse
}

// rssBytes reads VmRSS from /proc/self/status.
func rssBytes(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		if t != nil {
			t.Skip("no /proc: ", err)
		}
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	panic(fmt.Sprintf("no VmRSS in /proc/self/status: %q", b))
}
