package upstream

import (
	"context"
	"net"

	"github.com/miekg/dns"
)

// Upstream is one DNS server reached over one transport.
//
// Exchange returns err == nil whenever it obtained a well-formed response whose
// ID and question match req, whatever its RCODE. It never modifies req (callers
// may share one message across a race). It returns soon after ctx is done, is
// safe for concurrent use, and after Close returns errors wrapping net.ErrClosed.
type Upstream interface {
	Exchange(ctx context.Context, req *dns.Msg) (*dns.Msg, error)
	// String is the upstream's URL, used in logs and as a metric label.
	String() string
	Close() error
}

// Network is the seam every upstream dials through: the host's sockets
// ([System]) or a userspace tunnel. *ipsec.Tunnel satisfies it structurally.
//
// Addresses are IP literals with ports; resolving names is the caller's job.
type Network interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

// System returns the host's network.
func System() Network { return systemNetwork{} }

type systemNetwork struct{}

func (systemNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (systemNetwork) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, network, address)
}
