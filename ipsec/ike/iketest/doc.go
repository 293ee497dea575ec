// Package iketest runs a strongSwan 5.9 IKEv2 gateway for tests: two network
// namespaces joined by a veth pair, charon with kernel-libipsec in the
// gateway namespace (its own STRONGSWAN_CONF, vici socket and /run), and NSD
// on the gateway's internal address 10.200.0.53. The client side is a UDP
// socket opened inside the client namespace, usable from any goroutine.
//
// Everything is created per test with unique names and torn down in
// t.Cleanup; tests need root and the strongSwan and NSD packages (see
// testenv). See shared/reference/ipsec-interop.md §11 for the topology.
package iketest
