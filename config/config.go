package config

import (
	"net/netip"

	"github.com/miekg/dns"
)

// Config is a whole Lamina configuration. The zero value of every field is
// documented; an empty file is a valid configuration only once listeners are
// given (by the file or by flags).
type Config struct {
	// Listeners are the addresses clients query. At least one is required.
	Listeners []Listener `yaml:"listeners"`
	// UpstreamGroups are named sets of upstream servers that routes forward to.
	UpstreamGroups []UpstreamGroup `yaml:"upstream_groups"`
	// Routes map zones to upstream groups by longest suffix. Without a route for
	// "." names outside every routed zone are answered REFUSED.
	Routes []Route `yaml:"routes"`
	// LocalZones are answered authoritatively from static records.
	LocalZones []LocalZone `yaml:"local_zones"`
	// ACLs are named client lists, referenced by listeners.
	ACLs []ACL `yaml:"acls"`
	// RateLimit limits queries per client network. Zero: no limit.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Cache configures the answer cache. Zero: a cache with package defaults.
	Cache Cache `yaml:"cache"`
	// Resolver holds query-path settings shared by all listeners.
	Resolver Resolver `yaml:"resolver"`
	// TLS configures certificates and ECH for tls://, https://, h3:// and quic://.
	TLS TLS `yaml:"tls"`
	// Logging configures the process log and the query log.
	Logging Logging `yaml:"logging"`
	// Admin configures the HTTP listener for /metrics, /healthz, /readyz.
	Admin Admin `yaml:"admin"`
	// Tunnels are IPsec tunnels that upstream groups may dial through.
	Tunnels []Tunnel `yaml:"tunnels"`
	// Proxies are SOCKS5 and HTTP CONNECT listeners whose connections go
	// through a tunnel (or the host network), with names resolved by Lamina.
	Proxies []Proxy `yaml:"proxies"`

	file      string         // where the config came from, for error messages
	lines     map[string]int // field path → line, for validation errors
	adminFlag bool           // admin.address came from -admin
}

// Listener is one address Lamina serves on.
type Listener struct {
	// Name labels the listener in logs and metrics. Empty: the URL.
	Name string `yaml:"name"`
	// URL is scheme://ip:port[/path] with scheme udp, tcp (port 53 by default),
	// tls, quic (853) or https, h3 (443; path default /dns-query). Required.
	URL string `yaml:"url"`
	// ACL names an entry of the top-level acls list. Empty: the acl named "*"
	// if there is one, else loopback and private ranges allowed, the rest
	// REFUSED (with EDE 18 Prohibited).
	ACL string `yaml:"acl"`
	// MaxConns bounds the open connections of a tcp, tls, https or quic
	// listener. Beyond it tcp and tls close their longest-idle connection,
	// quic refuses the new one (DOQ_EXCESSIVE_LOAD) and https closes it.
	// Zero: 1000 for tcp, tls and quic; 10000 for https.
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes a connection with no query for this long; tcp and
	// tls advertise it with edns-tcp-keepalive (RFC 7828). Zero: 10s for tcp
	// and tls (RFC 7766), 30s for quic, 60s for https and h3.
	IdleTimeout Duration `yaml:"idle_timeout"`

	// Parsed is URL decoded; set by validation.
	Parsed ListenURL `yaml:"-"`

	origin string // the flag that made this entry, for error messages
}

// ListenURL is a validated listener URL.
type ListenURL struct {
	Scheme string         // udp, tcp, tls, https, h3, quic
	Addr   netip.AddrPort // always an IP literal
	Path   string         // https and h3 only; "/dns-query" when empty
}

// UpstreamGroup is a set of upstreams used together with one strategy.
type UpstreamGroup struct {
	// Name is what routes refer to. Required and unique.
	Name string `yaml:"name"`
	// Strategy is failover, round_robin, race or fastest. Empty: failover.
	Strategy string `yaml:"strategy"`
	// Upstreams are server URLs: udp://ip[:53], tcp://ip[:53], tls://host[:853],
	// https://host[:443]/path, h3://host[:443]/path, quic://host[:853]. At least one.
	Upstreams []string `yaml:"upstreams"`
	// Timeout bounds a whole query to the group. Zero: the upstream package default.
	Timeout Duration `yaml:"timeout"`
	// TryTimeout bounds one attempt at one upstream. Zero: the package default.
	TryTimeout Duration `yaml:"try_timeout"`
	// Stagger is how long race waits before starting the next upstream.
	// Zero: the package default.
	Stagger Duration `yaml:"stagger"`
	// Tunnel names an entry of tunnels to dial through. Empty: the host network.
	Tunnel string `yaml:"tunnel"`
	// Bootstrap are plain DNS upstreams (udp:// or tcp:// with IPs) that
	// resolve the host names of encrypted upstreams, never through
	// themselves. Empty: host names need ips, or must be IP literals.
	Bootstrap []string `yaml:"bootstrap"`
	// IPs are fixed addresses for the upstreams' host names, used instead of
	// bootstrap resolution. Empty: none.
	IPs []netip.Addr `yaml:"ips"`
	// ServerName overrides the TLS name verified on encrypted upstreams.
	// Empty: the URL's host.
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle to verify encrypted upstreams. Empty: system roots.
	CAFile string `yaml:"ca_file"`
	// PinSHA256 are base64 SHA-256 digests of SPKIs, one of which the
	// upstream's chain must contain. Empty: no pinning.
	PinSHA256 []string `yaml:"pin_sha256"`
	// ECH is require, opportunistic or off. Empty: opportunistic (ECH when a
	// config is known, from ech_config or the upstream's HTTPS record).
	ECH string `yaml:"ech"`
	// ECHConfig is the upstream's ECHConfigList in base64. Empty: discovered.
	ECHConfig string `yaml:"ech_config"`

	origin string
}

// Route sends queries under Zone to Group.
type Route struct {
	// Zone is a domain name; "." matches everything. Required, unique.
	Zone string `yaml:"zone"`
	// Group names an upstream group. Required.
	Group string `yaml:"group"`

	origin string
}

// LocalZone is a zone answered from static records.
type LocalZone struct {
	// Name is the zone's apex. Required, unique.
	Name string `yaml:"name"`
	// Records in presentation format ("router 3600 IN A 192.168.1.1"); relative
	// names are relative to Name; the TTL defaults to 3600. Every owner must lie
	// inside the zone.
	Records []string `yaml:"records"`

	// RRs are Records parsed; set by validation.
	RRs []dns.RR `yaml:"-"`
}

// ACL is a named client list. The longest prefix in allow or deny that
// contains the client decides (deny wins a tie); a client in neither list is
// refused. The name "*" makes it the default for listeners without an acl.
type ACL struct {
	Name  string         `yaml:"name"`  // required, unique
	Allow []netip.Prefix `yaml:"allow"` // CIDRs allowed; empty allows nobody
	Deny  []netip.Prefix `yaml:"deny"`  // CIDRs refused
}

// RateLimit is a per-client token bucket, keyed by IPv4 /24 and IPv6 /56.
type RateLimit struct {
	// QPS is the sustained rate per client network. Zero: no rate limit.
	QPS float64 `yaml:"qps"`
	// Burst is the bucket size. Zero: max(QPS, 1).
	Burst int `yaml:"burst"`
	// Action is refuse (REFUSED with EDE) or drop. Empty: refuse.
	Action string `yaml:"action"`
	// Exempt clients are never limited.
	Exempt []netip.Prefix `yaml:"exempt"`
}

// Cache configures the answer cache.
type Cache struct {
	// Disable turns the cache off. Zero (false): the cache is on.
	Disable bool `yaml:"disable"`
	// Size bounds the number of entries. Zero: the cache package default.
	Size int `yaml:"size"`
	// Bytes bounds the memory of the entries. Zero: the cache package default.
	Bytes int64 `yaml:"bytes"`
	// MinTTL and MaxTTL clamp record TTLs. Zero: no minimum; 24h.
	MinTTL Duration `yaml:"min_ttl"`
	MaxTTL Duration `yaml:"max_ttl"`
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA are kept (otherwise
	// the SOA's, RFC 2308). Zero: 1h.
	MaxNegativeTTL Duration `yaml:"max_negative_ttl"`
	// ServFailTTL is how long a SERVFAIL is kept, 1s to 5m (RFC 9520).
	// Zero: 5s.
	ServFailTTL Duration `yaml:"servfail_ttl"`
	// ServeStale answers expired entries when upstreams fail (RFC 8767).
	ServeStale bool `yaml:"serve_stale"`
	// StaleWhileRevalidate answers stale at once and refreshes in the background.
	StaleWhileRevalidate bool `yaml:"stale_while_revalidate"`
	// MaxStale is how long past expiry an entry may be served. Zero: 1 day.
	MaxStale Duration `yaml:"max_stale"`
	// DisablePrefetch stops refreshing popular entries shortly before they
	// expire. Zero (false): prefetch on.
	DisablePrefetch bool `yaml:"disable_prefetch"`
	// Redis is an optional shared second-level cache.
	Redis Redis `yaml:"redis"`
}

// Redis is a shared second-level cache.
type Redis struct {
	// URL is redis://[user@]host:port[/db] or rediss:// for TLS. Empty: no
	// Redis.
	URL string `yaml:"url"`
	// PasswordEnv names an environment variable holding the password, kept
	// out of the file. Empty: the URL's, if any.
	PasswordEnv string `yaml:"password_env"`
	// Prefix starts every key and names the flush channel. Empty:
	// "lamina:cache:".
	Prefix string `yaml:"prefix"`
	// Timeout bounds each Redis operation on the query path. Zero: 50ms.
	Timeout Duration `yaml:"timeout"`
}

// Resolver holds query-path settings.
type Resolver struct {
	// Timeout bounds each upstream exchange. Zero: 5s.
	Timeout Duration `yaml:"timeout"`
	// SendECS sends EDNS Client Subnet upstream (the client's own option, or
	// its address cut to /24 or /56). Zero (false): ECS is stripped.
	SendECS bool `yaml:"send_ecs"`
	// ForwardAny forwards ANY queries. Zero (false): they get the RFC 8482
	// minimal answer.
	ForwardAny bool `yaml:"forward_any"`
	// MaxBackground bounds concurrent background refreshes (prefetch,
	// stale-while-revalidate). Zero: 64.
	MaxBackground int `yaml:"max_background"`
	// ServiceName is the name Lamina advertises for itself in HTTPS/SVCB and DDR
	// (RFC 9462) answers. Empty: no self records.
	ServiceName string `yaml:"service_name"`
}

// TLS configures the encrypted frontends.
type TLS struct {
	// CertFile and KeyFile are PEM files. Empty: a self-signed certificate and CA
	// are generated in StateDir.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// StateDir keeps generated certificates and ECH keys. Empty:
	// "lamina-state" next to the config file; for the built-in config,
	// $XDG_STATE_HOME/lamina (~/.local/state/lamina).
	StateDir string `yaml:"state_dir"`
	// MinVersion is "1.3" or "1.2" (DoT and DoH only). Empty: 1.3.
	MinVersion string `yaml:"min_version"`
	// DisableSessionTickets turns resumption by tickets off.
	DisableSessionTickets bool `yaml:"disable_session_tickets"`
	// EarlyData allows 0-RTT queries on DoQ and h3.
	EarlyData bool `yaml:"early_data"`
	// ECH configures Encrypted Client Hello.
	ECH ECH `yaml:"ech"`
}

// ECH configures server-side Encrypted Client Hello.
type ECH struct {
	// Disable turns ECH off. Zero (false): ECH on when public_name is set.
	Disable bool `yaml:"disable"`
	// PublicName is the outer SNI clients show. Empty: ECH off.
	PublicName string `yaml:"public_name"`
	// Rotation is how often a new key is made. Zero: 30 days.
	Rotation Duration `yaml:"rotation"`
	// Grace is how long a replaced key is still accepted; it must exceed the
	// TTL of the published records. Zero: 7 days.
	Grace Duration `yaml:"grace"`
	// CertFile and KeyFile serve the public name when tls.cert_file does not
	// cover it. Empty: a certificate from the local CA.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Logging configures slog output.
type Logging struct {
	// Level is debug, info, warn or error. Empty: info.
	Level string `yaml:"level"`
	// Format is text or json. Empty: text.
	Format string `yaml:"format"`
	// QueryLog logs one line per query at info level.
	QueryLog bool `yaml:"query_log"`
	// LogClientIP puts the client address in the query log. Zero: left out.
	LogClientIP bool `yaml:"log_client_ip"`
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Address is ip:port. Empty: 127.0.0.1:9153 (DefaultAdminAddress).
	Address string `yaml:"address"`
	// Disable turns the admin listener off.
	Disable bool `yaml:"disable"`
	// TokenFile or TokenEnv holds a bearer token that the POST endpoints
	// (/cache/flush) require as "Authorization: Bearer TOKEN"; give at most
	// one. Neither: POST is accepted from loopback clients only, so that an
	// admin listener opened to a Prometheus server elsewhere cannot be used
	// to flush the cache. Read at start.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// DefaultAdminAddress is where the admin listener binds when admin.address is
// empty: loopback only, on the port CoreDNS made familiar for DNS metrics.
const DefaultAdminAddress = "127.0.0.1:9153"

// Tunnel is an IPsec tunnel to a gateway (IKEv2 + ESP in UDP).
type Tunnel struct {
	// Name is what upstream groups refer to. Required, unique.
	Name string `yaml:"name"`
	// Gateway is host:port or an IP. Port zero: 4500. Required.
	Gateway string `yaml:"gateway"`
	// LocalID and RemoteID are IKE identities (FQDN, email or IP). LocalID is
	// required; RemoteID empty: any.
	LocalID  string `yaml:"local_id"`
	RemoteID string `yaml:"remote_id"`
	// PSKFile or PSKEnv holds the pre-shared key; exactly one of them, or
	// CertFile+KeyFile, is required. The key is never logged.
	PSKFile string `yaml:"psk_file"`
	PSKEnv  string `yaml:"psk_env"`
	// CertFile, KeyFile and CAFile authenticate with certificates.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// IKEProposals and ESPProposals are strongSwan-style proposal strings such
	// as "aes256gcm16-prfsha384-x25519". Empty: safe modern defaults.
	IKEProposals []string `yaml:"ike_proposals"`
	ESPProposals []string `yaml:"esp_proposals"`
	// IKELifetime and ChildLifetime are rekey intervals (jittered by up to
	// 10%). Zero: 3h and 50m, under strongSwan's 4h and 1h.
	IKELifetime   Duration `yaml:"ike_lifetime"`
	ChildLifetime Duration `yaml:"child_lifetime"`
	// RemoteSubnets are the traffic selectors on the gateway side. Required.
	RemoteSubnets []netip.Prefix `yaml:"remote_subnets"`
	// InnerAddress is our address inside the tunnel. Zero: a virtual IP from
	// the gateway.
	InnerAddress netip.Addr `yaml:"inner_address"`
	// MTU of the inner stack. Zero: 1400.
	MTU int `yaml:"mtu"`
	// DPDDelay is the silence after which the gateway is probed; a gateway
	// that does not answer is declared dead and the tunnel re-established.
	// Zero: 30s.
	DPDDelay Duration `yaml:"dpd_delay"`
	// RetransmitTimeout is the wait before an unanswered IKE request is
	// sent again; it grows 1.8× per try, for RetransmitTries tries, after
	// which the exchange fails (and the tunnel is set up again with backoff).
	// Together they bound how soon a returning gateway is noticed: the
	// defaults give up after about 22 s. Zero: 1s and 5.
	RetransmitTimeout Duration `yaml:"retransmit_timeout"`
	RetransmitTries   int      `yaml:"retransmit_tries"`
}

// Proxy is a SOCKS5 (RFC 1928, CONNECT) and HTTP CONNECT listener on one port.
type Proxy struct {
	// Name labels the proxy in logs and metrics. Required, unique.
	Name string `yaml:"name"`
	// Address is ip:port to listen on. Required.
	Address string `yaml:"address"`
	// Tunnel names the tunnel every connection goes through; destinations
	// outside its traffic selectors are refused, never sent in clear.
	// Empty: the host network.
	Tunnel string `yaml:"tunnel"`
	// ACL names an acl of clients allowed to connect. Empty: loopback and
	// private ranges.
	ACL string `yaml:"acl"`
	// Ports are the destination ports allowed. Empty: 443 only.
	Ports []int `yaml:"ports"`
	// MaxConns bounds concurrent connections. Zero: 512.
	MaxConns int `yaml:"max_conns"`
	// IdleTimeout closes a connection idle both ways. Zero: 5m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DialTimeout bounds one outbound dial with its name lookup. Zero: 10s.
	DialTimeout Duration `yaml:"dial_timeout"`
}
