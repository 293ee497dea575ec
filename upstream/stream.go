package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// streamPool multiplexes queries over a few long-lived stream connections
// (TCP, TLS) with 2-byte length framing (RFC 1035 §4.2.2). Queries are
// pipelined and answers matched by ID in any order (RFC 7766 §6.2.1.1), so
// one slow query never holds up the others.
//
// Servers close idle connections when they like (RFC 7766 §6.2.3; public DoT
// resolvers after about 10 s), which a client only learns by using the
// connection. A query whose reused connection breaks before its answer
// arrives is therefore retried once on a fresh connection.
type streamPool struct {
	dial        func(ctx context.Context) (conn net.Conn, ech bool, err error)
	timeout     time.Duration
	idle        time.Duration
	maxConns    int
	maxInFlight int
	pad         int // RFC 8467 block size; 0 = no padding
	m           *upstreamMetrics
	log         *slog.Logger

	ctx    context.Context // cancelled by close, bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dials and readers

	mu     sync.Mutex
	conns  []*streamConn
	closed bool
}

// hardInFlight bounds queries on one connection whatever the soft cap: beyond
// it, finding a free ID gets slow and servers stop reading.
const hardInFlight = 4096

func newStreamPool(opts Options, um *upstreamMetrics, log *slog.Logger, dial func(ctx context.Context) (net.Conn, bool, error)) *streamPool {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamPool{
		dial:        dial,
		timeout:     opts.Timeout,
		idle:        opts.IdleTimeout,
		maxConns:    opts.MaxConns,
		maxInFlight: opts.MaxInFlight,
		m:           um,
		log:         log,
		ctx:         ctx,
		cancel:      cancel,
	}
}

// errStale marks a connection that broke before the query's answer arrived;
// the query may be retried once on a fresh connection.
var errStale = errors.New("upstream: connection closed before the answer")

// maxStaleRetries bounds the retries of one query after reused connections
// broke under it. One is the rule; a second covers servers that close after
// a fixed number of queries (miekg/dns after 128) while a retry was
// pipelined on another connection just as it reached the limit. A failure
// on a connection dialed for the query itself is never retried.
const maxStaleRetries = 2

// exchange sends req over a pooled connection. ctx must carry the deadline.
func (p *streamPool) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	var after time.Time
	for attempt := 0; ; attempt++ {
		sc, fresh, err := p.get(after)
		if err != nil {
			return nil, err
		}
		resp, err := sc.roundTrip(ctx, req)
		// A connection dialed for this query that failed before answering
		// anything says the server is broken: no retry. Once it has
		// answered, it is a reused connection like any other.
		if fresh && !sc.answered.Load() {
			return resp, err
		}
		if err == nil || attempt >= maxStaleRetries || !errors.Is(err, errStale) || ctx.Err() != nil {
			return resp, err
		}
		p.log.Debug("reused connection failed, retrying on a fresh one", "err", err)
		// Every query that was on the broken connection retries on the
		// same newer one instead of each dialing its own.
		after = sc.created
	}
}

// get reserves a slot on the least loaded live connection created after
// after, or on a new one while there is room. fresh reports a new
// connection, which is not worth a retry if it fails.
func (p *streamPool) get(after time.Time) (sc *streamConn, fresh bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, errClosedPool
	}
	var best *streamConn
	for _, c := range p.conns {
		if !c.created.After(after) || c.broken.Load() {
			continue
		}
		if best == nil || c.load.Load() < best.load.Load() {
			best = c
		}
	}
	if best != nil {
		load := best.load.Load()
		full := len(p.conns) >= p.maxConns
		if load < int32(p.maxInFlight) || (full && load < hardInFlight) {
			best.load.Add(1)
			return best, false, nil
		}
		if full {
			return nil, false, fmt.Errorf("upstream: %d queries in flight on every connection", hardInFlight)
		}
	}
	// No usable connection: dial one. On a retry this may exceed MaxConns
	// by one while older connections drain; the idle timeout reaps them.
	sc = &streamConn{p: p, ready: make(chan struct{}), created: time.Now(), calls: make(map[uint16]*call)}
	sc.load.Store(1)
	p.conns = append(p.conns, sc)
	p.wg.Add(1)
	go p.connect(sc)
	return sc, true, nil
}

var errClosedPool = fmt.Errorf("upstream: %w", net.ErrClosed)

// connect dials sc in the background, so that a caller whose ctx ends stops
// waiting while others queued on sc still get the connection.
func (p *streamPool) connect(sc *streamConn) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	conn, ech, err := p.dial(ctx)
	cancel()
	if err != nil {
		sc.fail(fmt.Errorf("dialing: %w", err))
		close(sc.ready)
		return
	}
	sc.conn, sc.ech = conn, ech
	p.m.conn(sc.ech)
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if closed {
		sc.fail(errClosedPool)
		close(sc.ready)
		return
	}
	close(sc.ready)
	go sc.readLoop()
}

// remove drops sc from the pool once it is broken.
func (p *streamPool) remove(sc *streamConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c == sc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			return
		}
	}
}

// close fails every query in flight with net.ErrClosed, closes every
// connection and waits for their goroutines.
func (p *streamPool) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		select {
		case <-c.ready:
			c.fail(errClosedPool)
		default: // connect fails it once the dial returns
		}
	}
	p.wg.Wait()
	return nil
}
