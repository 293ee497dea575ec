// Package esp implements the Encapsulating Security Payload in tunnel mode
// (RFC 4303): one [SA] per direction, sealing and opening packets in place.
//
// It owns the cipher suites Lamina offers (AES-GCM-16 per RFC 4106,
// ChaCha20-Poly1305 per RFC 7634, AES-CBC with HMAC-SHA2-256-128 per RFC 3602
// and RFC 4868), 32- and 64-bit (ESN) sequence numbers, the RFC 6479 style
// anti-replay window, RFC 4303 §2.4 padding, TFC padding removal, lifetimes
// and per-SA counters.
//
// It does not own keys' origin (IKEv2 or manual keying), SPI demultiplexing,
// UDP encapsulation or any IP routing: those live in package ipsec.
//
// Buffers: Seal works in place on a caller-provided buffer with headroom
// before the payload and room after it (see [SA.Overhead]); Open decrypts in
// place and returns a sub-slice of its input. Neither allocates per packet.
package esp
