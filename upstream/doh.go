package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DoH is DNS over HTTPS (RFC 8484): POST application/dns-message with ID 0
// (§4.1, so HTTP caches can share answers) over HTTP/2, falling back to
// HTTP/1.1 when the server offers no h2, or over HTTP/3 ([NewDoH3]). One
// connection carries many concurrent streams.
type DoH struct {
	endpoint string // the https:// URL requests go to
	url      string // String: the configured URL
	rt       http.RoundTripper
	closeRT  func() error
	timeout  time.Duration
	m        *upstreamMetrics
	closed   atomic.Bool

	// After suspectIdle without an answer, a query gets suspectWait on the
	// pooled connection before dropConns closes it and the query is sent
	// again on a fresh one: a server that dropped the connection silently
	// is noticed in a fraction of the timeout.
	suspectIdle, suspectWait time.Duration
	lastAnswer               atomic.Int64 // unix ns
	dropConns                func(dialedBefore time.Time)
}

var _ Upstream = (*DoH)(nil)

// maxDoHBody bounds what is read of a response (a DNS message is at most
// 65535 bytes).
const maxDoHBody = maxMsgSize

// NewDoH returns the DoH upstream at rawURL (https://host[:port]/path; the
// path defaults to /dns-query). It connects on the first Exchange.
func NewDoH(rawURL string, opts Options) (*DoH, error) {
	opts = opts.withDefaults()
	u, ep, err := dohURL(rawURL, "https")
	if err != nil {
		return nil, err
	}
	if ep, err = newEndpoint(ep.host, ep.port, opts); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	name := u.String()
	cfg, err := opts.tlsConfig(ep.host, []string{"h2", "http/1.1"}, tls.VersionTLS12)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	um := opts.Metrics.forUpstream(name)
	ech := newECHState(opts, discoverECH(opts.Bootstrap, echHost(ep, cfg)))
	rt := newH2Fallback(opts, ep, cfg, ech, um)
	return newDoH(u.String(), name, rt, func() error { rt.close(); return nil }, func(time.Time) { rt.close() }, opts, um), nil
}

func newDoH(endpoint, name string, rt http.RoundTripper, closeRT func() error, dropConns func(time.Time), opts Options, um *upstreamMetrics) *DoH {
	d := &DoH{
		endpoint:    endpoint,
		url:         name,
		rt:          rt,
		closeRT:     closeRT,
		timeout:     opts.Timeout,
		m:           um,
		suspectIdle: 5 * time.Second,
		suspectWait: min(time.Second, opts.Timeout/4),
		dropConns:   dropConns,
	}
	d.lastAnswer.Store(time.Now().UnixNano())
	return d
}

// dohURL checks an https:// or h3:// URL and returns it with the https
// scheme and a default path, and its host and port.
func dohURL(rawURL, scheme string) (*url.URL, *endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream %q: %w", rawURL, err)
	}
	if u.Scheme != scheme || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, nil, fmt.Errorf("upstream %q: want %s://host[:port]/path", rawURL, scheme)
	}
	u.Scheme = "https"
	if u.Path == "" || u.Path == "/" {
		u.Path = "/dns-query"
	}
	ep := &endpoint{host: u.Hostname(), port: 443}
	if p := u.Port(); p != "" {
		var n uint16
		if _, err := fmt.Sscan(p, &n); err != nil || n == 0 {
			return nil, nil, fmt.Errorf("upstream %q: bad port %q", rawURL, p)
		}
		ep.port = n
	}
	return u, ep, nil
}

// String returns the upstream's URL.
func (d *DoH) String() string { return d.url }

// Close closes idle connections; later exchanges fail with net.ErrClosed.
func (d *DoH) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	return d.closeRT()
}

// Exchange sends req and returns the matching answer; see [Upstream].
func (d *DoH) Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	start := time.Now()
	resp, err := d.exchange(ctx, req)
	d.m.exchange(start, resp, err)
	return resp, err
}

// errHTTP marks an answer that came back but was no DNS message (a status,
// a content type); not retried, since a fresh connection would not help.
var errHTTP = errors.New("upstream: bad HTTP response")

func (d *DoH) exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error) {
	if d.closed.Load() {
		return nil, closedError(d)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	buf := getBuf()
	wire, err := packQuery(req, 0, paddingBlock, *buf)
	if err != nil {
		putBuf(buf)
		return nil, fmt.Errorf("packing query: %w", err)
	}
	body := bytes.Clone(wire) // the transport may read it after a retry
	putBuf(buf)
	// A reused connection the server closed while idle fails the request
	// before any answer: try once more, on whatever connection the
	// transport has then (the dead one is gone from its pool).
	for attempt, ours := 0, 0; ; attempt++ {
		tryCtx, tryCancel := ctx, context.CancelFunc(func() {})
		started := time.Now()
		suspect := attempt == 0 && started.Sub(time.Unix(0, d.lastAnswer.Load())) > d.suspectIdle
		if suspect {
			tryCtx, tryCancel = context.WithTimeout(ctx, d.suspectWait)
		}
		resp, err := d.roundTrip(tryCtx, req, body)
		tryCancel()
		if err == nil {
			d.lastAnswer.Store(time.Now().UnixNano())
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exchanging with %s: %w", d, ctxError(ctx))
		}
		if d.closed.Load() {
			return nil, closedError(d)
		}
		if suspect && tryCtx.Err() != nil {
			d.dropConns(started)
			continue
		}
		if droppedByUs(err) && ours < 3 {
			// Another query dropped the connection this one was on (or was
			// handed from a pool that had not noticed yet): not a failure.
			ours++
			attempt--
			continue
		}
		if attempt > 0 || errors.Is(err, errHTTP) {
			return nil, fmt.Errorf("exchanging with %s: %w", d, err)
		}
	}
}

func (d *DoH) roundTrip(ctx context.Context, req *dns.Msg, body []byte) (*dns.Msg, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, d.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/dns-message")
	hreq.Header.Set("Accept", "application/dns-message")
	hresp, err := d.rt.RoundTrip(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		d.m.drop(dropBadContent)
		io.Copy(io.Discard, io.LimitReader(hresp.Body, 4096))
		return nil, fmt.Errorf("%w: status %s", errHTTP, hresp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(hresp.Header.Get("Content-Type")); mt != "application/dns-message" {
		d.m.drop(dropBadContent)
		return nil, fmt.Errorf("%w: content type %q", errHTTP, hresp.Header.Get("Content-Type"))
	}
	rbuf := getBuf()
	defer putBuf(rbuf)
	n, err := io.ReadFull(hresp.Body, *rbuf)
	switch {
	case err == nil: // buffer full: anything more is too much
		var one [1]byte
		if m, _ := io.ReadFull(hresp.Body, one[:]); m > 0 {
			d.m.drop(dropOversized)
			return nil, fmt.Errorf("%w: body over %d bytes", errHTTP, maxDoHBody)
		}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
	default:
		return nil, fmt.Errorf("reading body: %w", err)
	}
	resp, why := unpackResponse(req, (*rbuf)[:n], 0)
	if why != "" {
		// Over HTTP there is no other answer to wait for.
		d.m.drop(why)
		return nil, fmt.Errorf("%w: answer does not match the query (%s)", errHTTP, why)
	}
	return resp, nil
}
