package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/laminadns/lamina/upstream"
)

// queryCmd is "lamina query": a DNS client over any transport Lamina
// serves, built from package upstream's transports. With -trace it prints
// the layers the query crossed: its own hop as observed on the socket and in
// the TLS handshake, and, with -admin, the server's route and tunnel from
// its /layers view.
func queryCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("query", "query [-server URL] [-type T] [-ca FILE] [-ech BASE64 | -ech-from-dns] [-trace [-admin ADDR]] NAME", stderr)
	server := fs.String("server", "udp://127.0.0.1:8053", "server `URL`: udp://, tcp://, tls://, https://, h3:// or quic://")
	qtype := fs.String("type", "A", "query `type`")
	ca := fs.String("ca", "", "PEM `file` of the CA that signed the server's certificate (default: system roots)")
	sni := fs.String("server-name", "", "`name` to verify in the certificate and send as SNI (default: the URL's host)")
	echB64 := fs.String("ech", "", "the server's ECHConfigList, `base64`; ECH is then required")
	echDNS := fs.Bool("ech-from-dns", false, "look the server's ECH config up in DNS (SVCB/HTTPS records) through -bootstrap; used when found")
	bootURL := fs.String("bootstrap", "", "plain DNS `URL` (udp:// or tcp://) that resolves the server's name and its ECH config (default: the first nameserver of /etc/resolv.conf)")
	ipFlag := fs.String("ip", "", "connect to this `address` instead of resolving the server URL's host name")
	trace := fs.Bool("trace", false, "print the layers the query crossed")
	admin := fs.String("admin", "", "the server's admin `ip:port`, to show its route and tunnel for the name (with -trace)")
	timeout := fs.Duration("timeout", 5*time.Second, "overall `timeout`")
	// The name may come before or after the flags, as with dig.
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitConfig
		}
		if fs.NArg() == 0 {
			break
		}
		names, args = append(names, fs.Arg(0)), fs.Args()[1:]
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "lamina query: exactly one NAME is needed")
		return exitConfig
	}
	name := dns.Fqdn(names[0])
	qt, ok := dns.StringToType[strings.ToUpper(*qtype)]
	if !ok {
		fmt.Fprintf(stderr, "lamina query: unknown type %q\n", *qtype)
		return exitConfig
	}

	obs := &observer{}
	opts := upstream.Options{
		Network:    obs,
		Timeout:    *timeout,
		Tries:      1,
		CAFile:     *ca,
		ServerName: *sni,
		ECH:        upstream.ECHOff,
		TLSConfig:  &tls.Config{VerifyConnection: obs.tls},
	}
	if *ipFlag != "" {
		a, err := netip.ParseAddr(*ipFlag)
		if err != nil {
			fmt.Fprintf(stderr, "lamina query: -ip: %v\n", err)
			return exitConfig
		}
		opts.IPs = []netip.Addr{a}
	}
	switch {
	case *echB64 != "":
		list, err := base64.StdEncoding.DecodeString(*echB64)
		if err != nil {
			fmt.Fprintf(stderr, "lamina query: -ech: %v\n", err)
			return exitConfig
		}
		opts.ECH, opts.ECHConfigList = upstream.ECHRequire, list
	case *echDNS:
		opts.ECH = upstream.ECHOpportunistic
	}
	if su, err := url.Parse(*server); *echDNS || (err == nil && !isIP(su.Hostname()) && *ipFlag == "") {
		boot, err := bootstrap(*bootURL)
		if err != nil {
			fmt.Fprintf(stderr, "lamina query: bootstrap: %v\n", err)
			return exitConfig
		}
		defer boot.Close()
		opts.Bootstrap = boot
	}
	u, err := upstream.Parse(*server, opts)
	if err != nil {
		fmt.Fprintf(stderr, "lamina query: %v\n", err)
		return exitConfig
	}
	defer u.Close()

	req := new(dns.Msg)
	req.SetQuestion(name, qt)
	req.SetEdns0(resolver1232, false)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	resp, err := u.Exchange(ctx, req)
	rtt := time.Since(start)
	if err != nil {
		fmt.Fprintf(stderr, "lamina query: %s: %v\n", *server, err)
		if *trace {
			obs.print(stderr, *server)
		}
		return exitRuntime
	}
	padding := stripPadding(resp)
	fmt.Fprintln(stdout, resp.String())
	if padding > 0 {
		fmt.Fprintf(stdout, ";; PADDING: %d bytes (not shown)\n", padding)
	}
	fmt.Fprintf(stdout, ";; SERVER: %s\n;; Query time: %d msec\n", *server, rtt.Milliseconds())
	if *trace {
		fmt.Fprintln(stdout, "\n;; LAYERS")
		obs.print(stdout, *server)
		if *admin != "" {
			if err := traceServer(ctx, stdout, *admin, name); err != nil {
				fmt.Fprintf(stdout, ";; server view: unavailable: %v\n", err)
			}
		}
	}
	return exitOK
}

// stripPadding removes EDNS padding from m (it only fills the screen) and
// returns its length.
func stripPadding(m *dns.Msg) int {
	opt := m.IsEdns0()
	if opt == nil {
		return 0
	}
	n := 0
	kept := opt.Option[:0]
	for _, o := range opt.Option {
		if p, ok := o.(*dns.EDNS0_PADDING); ok {
			n += len(p.Padding)
			continue
		}
		kept = append(kept, o)
	}
	opt.Option = kept
	return n
}

// resolver1232 is the EDNS buffer size asked for (RFC 9715's safe size).
const resolver1232 = 1232

// observer is the Network the query's transport dials through and the TLS
// callback it handshakes with: it records what the query actually used.
type observer struct {
	mu    sync.Mutex
	dials []string
	state *tls.ConnectionState
}

func (o *observer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	o.note(network, address, c, err)
	return c, err
}

func (o *observer) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	c, err := lc.ListenPacket(ctx, network, address)
	o.mu.Lock()
	if err == nil {
		o.dials = append(o.dials, fmt.Sprintf("%s socket %s", network, c.LocalAddr()))
	}
	o.mu.Unlock()
	return c, err
}

func (o *observer) note(network, address string, c net.Conn, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.dials = append(o.dials, fmt.Sprintf("%s %s: %v", network, address, err))
		return
	}
	o.dials = append(o.dials, fmt.Sprintf("%s %s → %s", network, c.LocalAddr(), c.RemoteAddr()))
}

func (o *observer) tls(cs tls.ConnectionState) error {
	o.mu.Lock()
	o.state = &cs
	o.mu.Unlock()
	return nil
}

// print writes this client's hop: sockets and, if one ran, the handshake.
func (o *observer) print(w io.Writer, server string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	scheme, _, _ := strings.Cut(server, "://")
	fmt.Fprintf(w, ";; hop 1  client → server  transport %s\n", scheme)
	for _, d := range o.dials {
		fmt.Fprintf(w, ";;   socket   %s\n", d)
	}
	if cs := o.state; cs != nil {
		fmt.Fprintf(w, ";;   TLS      %s, %s, ALPN %q, SNI/verified name %q, resumed %v\n",
			tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.NegotiatedProtocol, cs.ServerName, cs.DidResume)
		fmt.Fprintf(w, ";;   ECH      accepted %v\n", cs.ECHAccepted)
	} else if scheme != "udp" && scheme != "tcp" {
		fmt.Fprintln(w, ";;   TLS      no handshake observed (connection reused or failed)")
	} else {
		fmt.Fprintln(w, ";;   TLS      none (plain DNS)")
	}
}

// traceServer prints the server's side for name from its /layers view: the
// route (longest zone match), its upstreams' path and, for a tunnel, the
// tunnel's state and SAs.
func traceServer(ctx context.Context, w io.Writer, admin, name string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/layers", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /layers: %s", resp.Status)
	}
	var v layersView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return err
	}
	for _, z := range v.LocalZones {
		if dns.IsSubDomain(z, name) {
			fmt.Fprintf(w, ";; hop 2  none: the server answers %s from its local zone %s (server's /layers)\n", name, z)
			return nil
		}
	}
	best, bestLen := []upstreamLayer(nil), -1
	for _, u := range v.Upstreams {
		for _, z := range u.Zones {
			z = dns.Fqdn(z)
			if dns.IsSubDomain(z, name) && dns.CountLabel(z) >= bestLen {
				if dns.CountLabel(z) > bestLen {
					best = nil
				}
				best, bestLen = append(best, u), dns.CountLabel(z)
			}
		}
	}
	if len(best) == 0 {
		fmt.Fprintln(w, ";; hop 2  server → upstream: no route for the name in /layers (answered locally or refused)")
		return nil
	}
	fmt.Fprintf(w, ";; hop 2  server → upstream  (server's /layers; route zone %s, group %s)\n", dns.Fqdn(best[0].Zones[0]), best[0].Group)
	for _, u := range best {
		fmt.Fprintf(w, ";;   upstream %s  transport %s  path %s", u.URL, u.Transport, u.Path)
		if u.ECHPolicy != "" {
			fmt.Fprintf(w, "  ech %s", u.ECHPolicy)
		}
		if u.Up != nil {
			fmt.Fprintf(w, "  healthy %v", *u.Up)
		}
		if len(u.Exchanges) > 0 {
			fmt.Fprintf(w, "  exchanges %v", u.Exchanges)
		}
		fmt.Fprintln(w)
	}
	tn := best[0].Tunnel
	for _, t := range v.Tunnels {
		if t.Name != tn {
			continue
		}
		fmt.Fprintf(w, ";; hop 3  tunnel %s  state %s  outer %s → %s  inner %s → %s\n", t.Name, t.State, t.OuterLocal, t.OuterRemote,
			strings.Join(t.InnerLocal, ","), strings.Join(t.InnerRemote, ","))
		for _, sa := range t.SAs {
			fmt.Fprintf(w, ";;   ESP SA   spi %s %-3s %s  %d packets  %d bytes\n", sa.SPI, sa.Direction, sa.Suite, sa.Packets, sa.Bytes)
		}
	}
	return nil
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// bootstrap is the plain DNS upstream that resolves the server's name and
// looks its ECH config up: raw, or else the first nameserver of
// /etc/resolv.conf.
func bootstrap(raw string) (upstream.Upstream, error) {
	if raw != "" {
		return upstream.Parse(raw, upstream.Options{})
	}
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			return upstream.Parse("udp://"+net.JoinHostPort(fields[1], "53"), upstream.Options{})
		}
	}
	return nil, errors.New("no nameserver in /etc/resolv.conf")
}
