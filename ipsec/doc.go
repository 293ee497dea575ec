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
// from the IKEv2 layer (package ipsec/ike) through AddInbound, SetOutbound
// and RemoveInbound, and IKE messages travel through SendIKE and
// Config.IKE / ReadIKE. It knows nothing of DNS and dials IP literals only.
//
// Subpackages: esp (SA crypto, replay window), netstack (gVisor glue).
package ipsec
