// Package tlsconf owns Lamina's server-side TLS material: the certificate the
// encrypted listeners present, the Encrypted Client Hello keys, and the DNS
// records (HTTPS, SVCB, DDR) through which Lamina advertises itself.
//
// A [Provider] loads a certificate from files and re-reads it when the files
// change (or on [Provider.Reload], which SIGHUP triggers), so live connections
// keep their session while new handshakes see the new certificate. With no
// certificate configured it generates a local CA and a server certificate in
// the state directory and reuses them on restart. Generated certificates last
// a year and are renewed while running once their last month begins: at most
// hourly a handshake compares the expiry with the clock and, when due, issues a
// new pair in the background, written atomically and swapped in for new
// handshakes; Reload renews too. Certificates from the operator's files are
// never rewritten. The local CA lasts ten years and is never replaced while
// running, since clients were told to trust it: Lamina warns during its last
// year (at start and at each renewal) and replaces an expired CA at start,
// after which clients must trust the new one.
//
// ECH (RFC 9849, shared mode only) uses crypto/tls's server side: X25519 keys
// with HKDF-SHA256 and AES-128-GCM or ChaCha20-Poly1305, persisted in the state
// directory and rotated on a schedule. Only the newest key is sent as a retry
// config; replaced keys are still accepted for a grace period that must exceed
// the TTL of the records that published them. [Provider.SelfRecords] builds
// HTTPS and SVCB records (RFC 9460, RFC 9461 dohpath, RFC 9462 DDR, RFC 9848
// ech) from the live key set, so the published ech value follows rotation.
//
// Session tickets are on by default, encrypted with one key set shared by
// every listener the Provider configures and rotated by crypto/tls itself (a
// new key every day, accepted for a week); a switch turns them off.
//
// The package does not listen, speak DNS, or decide policy: it hands
// *tls.Config values to the transports (dot, doh, doq) and records to the
// resolver.
package tlsconf
