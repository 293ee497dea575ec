package workpool

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultIdle is how long a goroutine waits for its next job before it
// exits, when New is given zero.
const DefaultIdle = 5 * time.Second

// Pool is a set of goroutines running jobs. It does not bound how many run
// at once: callers bound their own concurrency. The zero value is not
// usable; call New. A Pool is safe for concurrent use.
type Pool struct {
	jobs chan func() // unbuffered: a send succeeds only to a waiting goroutine
	done chan struct{}
	once sync.Once
	idle time.Duration

	started atomic.Int64 // goroutines started, for tests
}

// New returns a Pool whose goroutines exit after idle without a job
// (zero: DefaultIdle).
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{jobs: make(chan func()), done: make(chan struct{}), idle: idle}
}

// Go runs f on an idle goroutine of the pool, or on a new one. After Close
// it still runs f, on a goroutine that exits when f returns.
func (p *Pool) Go(f func()) {
	select {
	case p.jobs <- f:
	default:
		p.started.Add(1)
		go p.loop(f)
	}
}

func (p *Pool) loop(f func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		f = nil // not kept alive while idle
		t.Reset(p.idle)
		select {
		case f = <-p.jobs:
		case <-t.C:
			return
		case <-p.done:
			return
		}
	}
}

// Close makes the pool's goroutines exit once their job is done. It does
// not wait for them: callers that need their jobs finished track them.
func (p *Pool) Close() {
	p.once.Do(func() { close(p.done) })
}
