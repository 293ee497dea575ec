package upstream

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
)

// DoQ is DNS over QUIC (RFC 9250): one QUIC connection, reused, with one
// bidirectional stream per query. RFC 9250 §4.2.1: the Message ID MUST be 0;
// it is set on the wire copy only.
type DoQ struct {
	qd      *quicDialer
	tlsCfg  *tls.Config
	timeout time.Duration
	m       *upstreamMetrics
	url     string

	ctx    context.Context // ended by Close, bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// A reused connection that has carried no answer for suspectIdle gets
	// suspectWait to answer before the query moves to a fresh one.
	suspectIdle, suspectWait time.Duration
	lastAnswer               atomic.Int64 // unix ns of the last answer or dial

	mu      sync.Mutex
	conn    *quic.Conn
	dialing *dialWait
	closed  bool
}

type dialWait struct {
	done chan struct{}
	conn *quic.Conn
	err  error
}

// DoQ application error codes (RFC 9250 §4.3).
const (
	doqNoError          = 0x0
	doqRequestCancelled = 0x3
)

var _ Upstream = (*DoQ)(nil)

// NewDoQ returns the DoQ upstream at hostport ("host[:port]", port 853 by
// default). It connects on the first Exchange.
func NewDoQ(hostport string, opts Options) (*DoQ, error) {
	opts = opts.withDefaults()
	ep, err := endpointFor(hostport, 853, opts)
	if err != nil {
		return nil, err
	}
	url := "quic://" + ep.hostPort()
	cfg, err := opts.tlsConfig(ep.host, []string{"doq"}, tls.VersionTLS13)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", url, err)
	}
	um := opts.Metrics.forUpstream(url)
	ech := newECHState(opts, discoverECH(opts.Bootstrap, echHost(ep, cfg)))
	ctx, cancel := context.WithCancel(context.Background())
	return &DoQ{
		qd:      newQUICDialer(opts, ep, ech, um),
		tlsCfg:  cfg,
		timeout: opts.Timeout,
		m:       um,
		url:     url,
		ctx:     ctx,
		cancel:  cancel,

		suspectIdle: 5 * time.Second,
		suspectWait: min(time.Second, opts.Timeout/4),
	}, nil
}

// String returns the upstream's URL.
func (d *DoQ) String() string { return d.url }

// Close closes the connection; later exchanges fail with net.ErrClosed.
func (d *DoQ) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	conn := d.conn
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	if conn != nil {
		conn.CloseWithError(doqNoError, "")
	}
	return d.qd.close()
}

// Exchange sends req and returns the matching answer; see [Upstream].
func (d *DoQ) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := d.exchange(ctx, req)
	d.m.exchange(start, resp, err)
	return resp, err
}

func (d *DoQ) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		conn, fresh, err := d.getConn(ctx)
		if err != nil {
			return nil, fmt.Errorf("exchanging with %s: %w", d, err)
		}
		tryCtx, tryCancel := ctx, context.CancelFunc(func() {})
		suspect := !fresh && attempt == 0 && time.Since(time.Unix(0, d.lastAnswer.Load())) > d.suspectIdle
		if suspect {
			tryCtx, tryCancel = context.WithTimeout(ctx, d.suspectWait)
		}
		resp, err := d.roundTrip(tryCtx, conn, req)
		tryCancel()
		if err == nil {
			d.lastAnswer.Store(time.Now().UnixNano())
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exchanging with %s: %w", d, ctxError(ctx))
		}
		if suspect && tryCtx.Err() != nil {
			// Silent after a long idle: the server most likely dropped the
			// connection without telling (no stateless reset).
			conn.CloseWithError(doqNoError, "unresponsive")
			d.forget(conn)
			continue
		}
		if conn.Context().Err() != nil {
			d.forget(conn)
			err = fmt.Errorf("%w: %w", errStale, err)
			if !fresh && attempt == 0 {
				continue // the server closed an idle connection
			}
		}
		return nil, fmt.Errorf("exchanging with %s: %w", d, err)
	}
}

// getConn returns the live connection or waits for a dial, started in the
// background so a cancelled caller does not fail others waiting on it.
func (d *DoQ) getConn(ctx context.Context) (*quic.Conn, bool, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, false, errClosedPool
	}
	if d.conn != nil && d.conn.Context().Err() == nil {
		c := d.conn
		d.mu.Unlock()
		return c, false, nil
	}
	w, fresh := d.dialing, false
	if w == nil {
		w, fresh = &dialWait{done: make(chan struct{})}, true
		d.dialing = w
		d.wg.Add(1)
		go d.dial(w)
	}
	d.mu.Unlock()
	select {
	case <-w.done:
		return w.conn, fresh, w.err
	case <-ctx.Done():
		return nil, false, ctxError(ctx)
	}
}

func (d *DoQ) dial(w *dialWait) {
	defer d.wg.Done()
	ctx, cancel := context.WithTimeout(d.ctx, d.timeout)
	defer cancel()
	c, err := d.qd.dial(ctx, d.tlsCfg, nil)
	d.mu.Lock()
	w.conn, w.err = c, err
	if err != nil {
		w.err = fmt.Errorf("dialing: %w", err)
	} else if d.closed {
		c.CloseWithError(doqNoError, "")
		w.conn, w.err = nil, errClosedPool
	} else {
		d.conn = c
		d.lastAnswer.Store(time.Now().UnixNano())
	}
	d.dialing = nil
	d.mu.Unlock()
	close(w.done)
}

func (d *DoQ) forget(c *quic.Conn) {
	d.mu.Lock()
	if d.conn == c {
		d.conn = nil
	}
	d.mu.Unlock()
}

// roundTrip runs one query on its own stream: the query framed with a
// 2-byte length, FIN, then one framed answer (RFC 9250 §4.2).
func (d *DoQ) roundTrip(ctx context.Context, conn *quic.Conn, req *dns.Msg) (*dns.Msg, error) {
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(doqRequestCancelled)
		st.CancelWrite(doqRequestCancelled)
	})
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}

	buf := getBuf()
	defer putBuf(buf)
	wire, err := packQuery(req, 0, paddingBlock, (*buf)[2:])
	if err != nil {
		st.CancelWrite(doqRequestCancelled)
		st.CancelRead(doqRequestCancelled)
		return nil, fmt.Errorf("packing query: %w", err)
	}
	binary.BigEndian.PutUint16(*buf, uint16(len(wire)))
	if _, err := st.Write((*buf)[:2+len(wire)]); err != nil {
		st.CancelRead(doqRequestCancelled)
		return nil, fmt.Errorf("sending: %w", err)
	}
	st.Close() // FIN: RFC 9250 §4.2 says the client MUST indicate no more data

	var hdr [2]byte
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		return nil, fmt.Errorf("receiving: %w", readErr(err))
	}
	raw := (*buf)[:binary.BigEndian.Uint16(hdr[:])]
	if _, err := io.ReadFull(st, raw); err != nil {
		return nil, fmt.Errorf("receiving: %w", readErr(err))
	}
	resp, why := unpackResponse(req, raw, 0)
	if why != "" {
		d.m.drop(why)
		return nil, fmt.Errorf("answer does not match the query (%s)", why)
	}
	return resp, nil
}

// readErr marks a stream that ended early as a protocol failure rather
// than a clean end of data.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("stream ended before a full answer: %w", io.ErrUnexpectedEOF)
	}
	var se *quic.StreamError
	if errors.As(err, &se) {
		return fmt.Errorf("stream reset by server (code %d): %w", se.ErrorCode, err)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return ErrTimeout
	}
	return err
}
