// Package dnstest lets ipsec's tests carry real DNS through the tunnel
// without ipsec depending on a DNS library: it builds queries and reads
// answers as raw RFC 1035 bytes, and runs a real NSD on 127.0.0.1.
//
// It is for tests only; nothing outside ipsec/*_test.go imports it.
package dnstest
