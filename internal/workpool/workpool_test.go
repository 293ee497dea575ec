package workpool

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestReuse: jobs run one after another, each once the previous one's
// goroutine is idle again, reuse that goroutine.
func TestReuse(t *testing.T) {
	p := New(time.Minute)
	defer p.Close()
	const jobs = 20
	var ran atomic.Int32
	for range jobs {
		done := make(chan struct{})
		p.Go(func() { ran.Add(1); close(done) })
		<-done
		time.Sleep(5 * time.Millisecond) // the goroutine goes back to waiting
	}
	if n := ran.Load(); n != jobs {
		t.Fatalf("%d jobs ran, want %d", n, jobs)
	}
	// Without reuse every job starts one; allow for a scheduler hiccup.
	if n := p.started.Load(); n > jobs/4 {
		t.Errorf("%d goroutines started for %d sequential jobs", n, jobs)
	}
}

// TestConcurrent: jobs that wait for each other each get a goroutine.
func TestConcurrent(t *testing.T) {
	p := New(0)
	defer p.Close()
	const n = 50
	var wg sync.WaitGroup
	release := make(chan struct{})
	wg.Add(n)
	for range n {
		p.Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
}

// TestIdleExit: an idle goroutine exits after the idle time (goleak would
// catch one that stays).
func TestIdleExit(t *testing.T) {
	p := New(10 * time.Millisecond)
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	time.Sleep(50 * time.Millisecond)
	// Go after the goroutine left, and after Close: the job still runs.
	ran := make(chan struct{})
	p.Go(func() { close(ran) })
	<-ran
	p.Close()
	ran2 := make(chan struct{})
	p.Go(func() { close(ran2) })
	<-ran2
}
