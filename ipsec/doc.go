// Package ipsec is Lamina's userspace IPsec tunnel: ESP in UDP (RFC 4303,
// RFC 3948) over one ordinary UDP socket to the gateway's port 4500, with
// gVisor's TCP/IP stack inside, exposed as DialContext and ListenPacket.
//
// A [Tunnel] owns the outer socket, demultiplexes it (IKE behind the non-ESP
// marker, NAT keepalives, ESP by SPI), keeps the SA database (inbound SPI →
// SA map so old SAs drain after a rekey; one atomically switched outbound
// SA), sends NAT keepalives, and refuses traffic outside the negotiated
// traffic selectors (RFC 4301 §4.4.1): nothing ever leaves in clear.
//
// It does not negotiate keys: SAs come from manual keying (Config.Manual) or
// from the IKEv2 layer (package ipsec/ike, wired by Dial) through the keying
// API below, and IKE messages travel through SendIKE and Config.IKE or
// ReadIKE. It knows nothing of DNS and dials IP literals only.
//
// The API in short:
//
//	New(ctx, Config) (*Tunnel, error)            // Config.Manual for static SAs
//	(*Tunnel).DialContext(ctx, network, addr)     // tcp/udp[46], "ip:port"
//	(*Tunnel).ListenPacket(ctx, network, addr)    // udp, "" or ":0" or "ip:port"
//	(*Tunnel).Listen(ctx, network, addr)          // tcp (gateway side, tests)
//	(*Tunnel).Stats() Stats; Close() error
//
//	// keying (IKE):
//	AddInbound(esp.Config) error                 // new SPI accepted at once
//	SetOutbound(esp.Config) error                // atomic switch, in order
//	InstallChildSA(in, out esp.Config) error     // AddInbound + SetOutbound
//	RemoveInbound(spi, grace)                    // drain, then drop
//	ClearOutbound(); Outbound() (spi, ok)
//	SetRemoteTS([]netip.Prefix); AddAddress(netip.Addr)
//	SendIKE(ctx, msg) error; ReadIKE(ctx) ([]byte, error); IKEConn{T}
//	Config.OnSAEvent func(esp.Event)             // soft = rekey, hard = dead
//
// Subpackages: esp (SA crypto, replay window, lifetimes), netstack (gVisor
// glue). RFCs: 4301, 4303, 3948, 4106, 7634, 3602, 4868, 6479, 8221.
package ipsec
