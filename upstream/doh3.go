package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// NewDoH3 returns a DoH upstream over HTTP/3 (RFC 9114) at rawURL
// (h3://host[:port]/path, requests going to the https:// URL). QUIC runs
// over Options.Network, one connection carrying a stream per query.
func NewDoH3(rawURL string, opts Options) (*DoH, error) {
	opts = opts.withDefaults()
	u, ep, err := dohURL(rawURL, "h3")
	if err != nil {
		return nil, err
	}
	if ep, err = newEndpoint(ep.host, ep.port, opts); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	name := "h3://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		name += "?" + u.RawQuery
	}
	cfg, err := opts.tlsConfig(ep.host, []string{http3.NextProtoH3}, tls.VersionTLS13)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	um := opts.Metrics.forUpstream(name)
	qd := newQUICDialer(opts, ep, newECHState(opts, discoverECH(opts.Bootstrap, echHost(ep, cfg))), um)
	ctx, cancel := context.WithCancel(context.Background())
	p := &h3Pool{
		tr:      &http3.Transport{DisableCompression: true, MaxResponseHeaderBytes: 16 << 10},
		qd:      qd,
		tlsCfg:  cfg,
		timeout: opts.Timeout,
		ctx:     ctx,
		cancel:  cancel,
	}
	return newDoH(u.String(), name, p, p.close, p.dropConns, opts, um), nil
}

// h3Pool keeps one HTTP/3 connection and dials a new one, once for all
// waiting requests, when it is gone. http3.Transport would do the pooling
// too, but after a connection dies it lets every waiting request dial its
// own, which is a burst of handshakes exactly when the server is slow.
type h3Pool struct {
	tr      *http3.Transport // settings for NewClientConn only
	qd      *quicDialer
	tlsCfg  *tls.Config
	timeout time.Duration
	ctx     context.Context // ended by close; bounds dials
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	cur     *h3Conn
	dialing *h3Dial
	closed  bool
}

type h3Conn struct {
	qc      *quic.Conn
	cc      *http3.ClientConn
	created time.Time
}

type h3Dial struct {
	done chan struct{}
	c    *h3Conn
	err  error
}

func (p *h3Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	c, err := p.get(req.Context())
	if err != nil {
		return nil, err
	}
	resp, err := c.cc.RoundTrip(req)
	if err != nil && c.qc.Context().Err() != nil {
		p.forget(c)
	}
	return resp, err
}

func (p *h3Pool) get(ctx context.Context) (*h3Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosedPool
	}
	if p.cur != nil && p.cur.qc.Context().Err() == nil {
		c := p.cur
		p.mu.Unlock()
		return c, nil
	}
	w := p.dialing
	if w == nil {
		w = &h3Dial{done: make(chan struct{})}
		p.dialing = w
		p.wg.Add(1)
		go p.dial(w)
	}
	p.mu.Unlock()
	select {
	case <-w.done:
		return w.c, w.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *h3Pool) dial(w *h3Dial) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	qc, err := p.qd.dial(ctx, p.tlsCfg, nil)
	p.mu.Lock()
	switch {
	case err != nil:
		w.err = fmt.Errorf("dialing: %w", err)
	case p.closed:
		qc.CloseWithError(0x100, "")
		w.err = errClosedPool
	default:
		w.c = &h3Conn{qc: qc, cc: p.tr.NewClientConn(qc), created: time.Now()}
		p.cur = w.c
	}
	p.dialing = nil
	p.mu.Unlock()
	close(w.done)
}

func (p *h3Pool) forget(c *h3Conn) {
	p.mu.Lock()
	if p.cur == c {
		p.cur = nil
	}
	p.mu.Unlock()
}

// dropConns closes the connection if it was dialed before t; see DoH.
func (p *h3Pool) dropConns(t time.Time) {
	p.mu.Lock()
	c := p.cur
	if c == nil || !c.created.Before(t) {
		p.mu.Unlock()
		return
	}
	p.cur = nil
	p.mu.Unlock()
	c.qc.CloseWithError(0x100, dropMessage) // H3_NO_ERROR
}

func (p *h3Pool) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	c := p.cur
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	if c != nil {
		c.qc.CloseWithError(0x100, "")
	}
	return errors.Join(p.qd.close())
}
