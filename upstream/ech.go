package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/dns"
)

var (
	// ErrECHRequired means ECHRequire is set but no ECH config list is
	// configured and none was discovered.
	ErrECHRequired = errors.New("upstream: ECH required but no ECH config list is known")
	// ErrECHRejected means the server refused ECH under ECHRequire, or
	// refused even the retry configs it sent itself.
	ErrECHRejected = errors.New("upstream: server rejected ECH")
)

// echState is an upstream's current ECH config list: configured, discovered
// from the server's SVCB/HTTPS record (RFC 9461, RFC 9460 §9), or replaced by
// the retry configs of a rejection (the server rotated its keys).
type echState struct {
	policy   ECHPolicy
	discover func(ctx context.Context) ([]byte, error) // nil: no discovery

	mu    sync.Mutex
	list  []byte
	tried bool // discovery ran
}

func newECHState(o Options, discover func(ctx context.Context) ([]byte, error)) *echState {
	e := &echState{policy: o.ECH, list: o.ECHConfigList}
	if o.ECH != ECHOff && len(o.ECHConfigList) == 0 {
		e.discover = discover
	}
	return e
}

func (e *echState) current(ctx context.Context) []byte {
	if e.policy == ECHOff {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) == 0 && e.discover != nil && !e.tried {
		e.tried = true // once: a missing record is not looked up per dial
		if l, err := e.discover(ctx); err == nil {
			e.list = l
		}
	}
	return e.list
}

func (e *echState) set(list []byte) {
	e.mu.Lock()
	e.list = list
	e.mu.Unlock()
}

// echHandshake runs handshake with ECH as the policy says, and reports
// whether ECH was accepted. On a rejection carrying retry configs it retries
// once with them (the draft's §6.1.6); on a rejection without (the server
// does not do ECH, which crypto/tls has authenticated against the public
// name) it falls back to a plain handshake unless ECH is required.
func echHandshake[C any](ctx context.Context, e *echState, base *tls.Config,
	handshake func(context.Context, *tls.Config) (C, error)) (C, bool, error) {
	var zero C
	list := e.current(ctx)
	if len(list) == 0 {
		if e.policy == ECHRequire {
			return zero, false, ErrECHRequired
		}
		c, err := handshake(ctx, base)
		return c, false, err
	}
	for attempt := 0; ; attempt++ {
		cfg := base.Clone()
		cfg.MinVersion = tls.VersionTLS13
		cfg.EncryptedClientHelloConfigList = list
		c, err := handshake(ctx, cfg)
		if err == nil {
			return c, true, nil
		}
		var rej *tls.ECHRejectionError
		if !errors.As(err, &rej) {
			return zero, false, err
		}
		if len(rej.RetryConfigList) > 0 && attempt == 0 {
			e.set(rej.RetryConfigList)
			list = rej.RetryConfigList
			continue
		}
		if e.policy == ECHRequire || len(rej.RetryConfigList) > 0 {
			return zero, false, fmt.Errorf("%w: %w", ErrECHRejected, err)
		}
		c, err = handshake(ctx, base)
		return c, false, err
	}
}

// discoverECH looks up an ECH config list for host through boot: first the
// DNS server's own SVCB record (_dns.host, RFC 9461), then host's HTTPS
// record (RFC 9460), taking the first "ech" parameter found.
func discoverECH(boot Upstream, host string) func(ctx context.Context) ([]byte, error) {
	if boot == nil || host == "" {
		return nil
	}
	return func(ctx context.Context) ([]byte, error) {
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"_dns." + host, dns.TypeSVCB}, {host, dns.TypeHTTPS}} {
			req := new(dns.Msg)
			req.SetQuestion(dns.Fqdn(q.name), q.qtype)
			req.SetEdns0(1232, false)
			resp, err := boot.Exchange(ctx, req)
			if err != nil {
				continue
			}
			for _, rr := range resp.Answer {
				var kv []dns.SVCBKeyValue
				switch r := rr.(type) {
				case *dns.SVCB:
					kv = r.Value
				case *dns.HTTPS:
					kv = r.Value
				}
				for _, v := range kv {
					if ech, ok := v.(*dns.SVCBECHConfig); ok && len(ech.ECH) > 0 {
						return ech.ECH, nil
					}
				}
			}
		}
		return nil, errors.New("no ECH config in SVCB/HTTPS records")
	}
}
