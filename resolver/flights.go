package resolver

import (
	"sync"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/internal/workpool"
)

// flights coalesces identical upstream exchanges: the first query for a
// key starts the exchange, later ones wait for its result. The exchange
// runs on a pool goroutine, not the leader's, so that every waiter,
// leader included, can stop waiting (its deadline, a stale answer) while
// the exchange goes on to fill the cache for the others. This is
// singleflight's DoChan, minus the fresh goroutine and its stack growth on
// every cache miss.
type flights struct {
	mu   sync.Mutex
	m    map[string]*flight
	pool *workpool.Pool
}

// flight is one exchange. resp and err are set, and dups final, before
// done is closed.
type flight struct {
	done chan struct{}
	resp *dns.Msg
	err  error
	dups int // waiters besides the leader
}

// shared reports whether more than one query got this flight's answer, so
// that each must copy it before changing it. Only after done.
func (f *flight) shared() bool { return f.dups > 0 }

// join returns the flight for key, starting fn as a new one when there is
// none; led reports whether this call started it.
func (fs *flights) join(key string, fn func() (*dns.Msg, error)) (f *flight, led bool) {
	fs.mu.Lock()
	if f := fs.m[key]; f != nil {
		f.dups++
		fs.mu.Unlock()
		return f, false
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f = &flight{done: make(chan struct{})}
	fs.m[key] = f
	fs.mu.Unlock()
	fs.pool.Go(func() {
		f.resp, f.err = fn()
		fs.mu.Lock()
		delete(fs.m, key)
		fs.mu.Unlock()
		close(f.done)
	})
	return f, true
}
