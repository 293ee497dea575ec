package cache

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/laminadns/lamina/internal/testenv"
	"github.com/laminadns/lamina/resolver"
	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// startRedis runs a throwaway redis-server on a free loopback port and
// returns its URL; stop kills it early.
func startRedis(t testing.TB) (url string, stop func()) {
	t.Helper()
	bin := testenv.Tool(t, "redis-server")
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	url = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	opt, _ := redis.ParseURL(url)
	opt.MaintNotificationsConfig = nil
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	for range 100 { // up to ~5 s for the server to listen
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return url, stop
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("redis-server did not come up")
	return "", nil
}

func redisCache(t *testing.T, url string, clk *clock) *Cache {
	t.Helper()
	c, err := New(Config{Now: clk.Now, Redis: &RedisConfig{URL: url, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// countHook counts the GET and SET commands a client sends.
type countHook struct{ n atomic.Int32 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "get" || cmd.Name() == "set" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// noLeaks checks, after every cleanup (Close) ran, that no goroutine of the
// test is left.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// eventually polls cond, bounded in count and time.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRedisSharedBetweenInstances(t *testing.T) {
	noLeaks(t)
	url, _ := startRedis(t)
	clk := newClock()
	a, b := redisCache(t, url, clk), redisCache(t, url, clk)

	req := query("www.example.com.", dns.TypeA, true, false)
	a.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "www.example.com. 300 IN A 192.0.2.1"), nil, nil))
	clk.Advance(100 * time.Second)

	q := query("WWW.Example.COM.", dns.TypeA, true, false)
	m, fr := b.Get(q, false)
	if fr != resolver.Fresh {
		t.Fatalf("instance B: %v, want the answer instance A cached", fr)
	}
	if m.Question[0].Name != "WWW.Example.COM." || m.Answer[0].Header().Ttl != 200 {
		t.Errorf("B's answer %v: want the client's case and TTL decayed by the shared expiry (200)", m)
	}
	if st := b.Stats(); st.RedisHits != 1 || st.Misses != 0 || st.Entries != 1 {
		t.Errorf("B stats %+v: want one Redis hit now held locally", st)
	}
	if _, fr := wireGet(t, b, q, 512); fr != resolver.Fresh {
		t.Errorf("B's fast path after the fill: %v", fr)
	}

	// Negative answers are shared; SERVFAIL stays local.
	nx := query("nx.example.com.", dns.TypeA, false, false)
	a.Set(nx, reply(nx, dns.RcodeNameError, nil, rrs(t, "example.com. 60 IN SOA ns.example.com. h.example.com. 1 2 3 4 60"), nil))
	if m, fr := b.Get(nx, false); fr != resolver.Fresh || m.Rcode != dns.RcodeNameError {
		t.Errorf("shared NXDOMAIN: %v %v", fr, m)
	}
	sf := query("sf.example.com.", dns.TypeA, false, false)
	a.Set(sf, reply(sf, dns.RcodeServerFailure, nil, nil, nil))
	if _, fr := b.Get(sf, false); fr != resolver.Miss {
		t.Errorf("SERVFAIL shared: %v", fr)
	}

	// Closed, B keeps its local entries and no longer asks Redis.
	if err := b.Close(); err != nil || b.Close() != nil {
		t.Errorf("Close twice: %v", err)
	}
	if _, fr := b.Get(q, false); fr != resolver.Fresh {
		t.Errorf("local entry lost at Close: %v", fr)
	}

	// Serve-stale works from Redis too: C starts after the answer expired.
	clk.Advance(time.Hour)
	c := redisCache(t, url, clk)
	if _, fr := c.Get(req, false); fr != resolver.Miss {
		t.Errorf("expired shared answer served fresh: %v", fr)
	}
	if m, fr := c.Get(req, true); fr != resolver.Stale || m.Answer[0].Header().Ttl != 30 {
		t.Errorf("stale from Redis: %v %v", fr, m)
	}
}

func TestRedisFlushPropagates(t *testing.T) {
	noLeaks(t)
	url, _ := startRedis(t)
	clk := newClock()
	a, b := redisCache(t, url, clk), redisCache(t, url, clk)
	names := []string{"a.example.", "b.example.", "c*[x].example."}
	for _, n := range names {
		req := query(n, dns.TypeA, false, false)
		a.Set(req, reply(req, dns.RcodeSuccess, []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{192, 0, 2, 1},
		}}, nil, nil))
		if _, fr := b.Get(req, false); fr != resolver.Fresh {
			t.Fatalf("B did not get %s", n)
		}
	}
	cached := func(c *Cache, n string) bool {
		_, fr := wireGet(t, c, query(n, dns.TypeA, false, false), 512)
		return fr == resolver.Fresh
	}

	if got := a.FlushName("A.EXAMPLE."); got != 1 {
		t.Errorf("FlushName removed %d locally, want 1", got)
	}
	eventually(t, "B to drop a.example.", func() bool { return !cached(b, "a.example.") })
	if !cached(b, "b.example.") || !cached(b, "c*[x].example.") {
		t.Error("FlushName dropped other names on B")
	}
	c := redisCache(t, url, clk) // a third instance, empty: only Redis can answer
	if _, fr := c.Get(query("a.example.", dns.TypeA, false, false), false); fr != resolver.Miss {
		t.Error("a.example. still in Redis")
	}
	if _, fr := c.Get(query("b.example.", dns.TypeA, false, false), false); fr != resolver.Fresh {
		t.Error("b.example. lost from Redis by another name's flush")
	}

	b.Flush()
	eventually(t, "A to flush everything", func() bool { return a.Stats().Entries == 0 })
	if _, fr := c.Get(query("c*[x].example.", dns.TypeA, false, false), false); fr != resolver.Miss {
		t.Error("Redis not emptied by Flush")
	}
}

func TestRedisDownFallsBack(t *testing.T) {
	noLeaks(t)
	// A server that accepts connections and never answers: the worst case.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() })
		}
	}()
	clk := newClock()
	c, err := New(Config{Now: clk.Now, Redis: &RedisConfig{URL: "redis://" + ln.Addr().String(), Timeout: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var sent countHook
	c.l2.rdb.AddHook(&sent)

	req := query("a.example.", dns.TypeA, false, false)
	c.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil))
	if _, fr := c.Get(req, false); fr != resolver.Fresh {
		t.Fatalf("local answer lost while Redis hangs: %v", fr)
	}
	other := query("b.example.", dns.TypeA, false, false)
	for range 3 {
		if _, fr := c.Get(other, false); fr != resolver.Miss {
			t.Fatalf("miss expected, got %v", fr)
		}
	}
	st := c.Stats()
	if st.RedisFailures != 4 || st.Misses != 3 {
		t.Errorf("stats %+v: want 4 fallbacks (1 set, 3 gets) and 3 misses", st)
	}
	// While down, Redis is skipped: no command is even tried, until the
	// retry interval has passed.
	if n := sent.n.Load(); n != 1 {
		t.Errorf("%d commands sent, want only the first (the SET)", n)
	}
	for range 50 {
		c.Get(other, false)
	}
	if n := sent.n.Load(); n != 1 {
		t.Errorf("%d commands sent to a Redis marked down", n-1)
	}
	clk.Advance(redisRetry)
	c.Get(other, false)
	if n := sent.n.Load(); n != 2 {
		t.Errorf("no retry after the interval (%d commands)", n)
	}
	if st := c.Stats(); st.RedisFailures != 4+50+1 {
		t.Errorf("%d fallbacks counted, want %d", st.RedisFailures, 4+50+1)
	}

	// A refused connection (nothing listening) falls back just the same.
	port := testenv.FreePort(t)
	d, err := New(Config{Redis: &RedisConfig{URL: fmt.Sprintf("redis://127.0.0.1:%d", port)}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Set(req, reply(req, dns.RcodeSuccess, rrs(t, "a.example. 60 IN A 192.0.2.1"), nil, nil))
	if _, fr := d.Get(req, false); fr != resolver.Fresh || d.Stats().RedisFailures != 1 {
		t.Errorf("refused Redis: %v %+v", fr, d.Stats())
	}
}

func TestRedisBadURL(t *testing.T) {
	if _, err := New(Config{Redis: &RedisConfig{URL: "http://x"}}); err == nil {
		t.Error("New accepted a non-Redis URL")
	}
}

// BenchmarkRedisFill is a local miss answered by Redis: the cost another
// instance's answer has on its first use here (GET, parse, local insert).
func BenchmarkRedisFill(b *testing.B) {
	url, _ := startRedis(b)
	clk := newClock()
	a, err := New(Config{Now: clk.Now, Redis: &RedisConfig{URL: url}})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	c, err := New(Config{Now: clk.Now, Redis: &RedisConfig{URL: url}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := query("www.example.com.", dns.TypeA, true, false)
	a.Set(req, reply(req, dns.RcodeSuccess, rrs(b, "www.example.com. 300 IN A 192.0.2.1"), nil, nil))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		c.flushLocal()
		b.StartTimer()
		if _, fr := c.Get(req, false); fr != resolver.Fresh {
			b.Fatalf("not filled from Redis: %v", fr)
		}
	}
}
