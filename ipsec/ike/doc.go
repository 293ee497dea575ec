// Package ike is Lamina's IKEv2 initiator (RFC 7296): it brings up an IKE SA
// with a gateway, authenticates, negotiates CHILD_SAs and keeps them alive,
// and hands each CHILD_SA's keys to the ESP data plane through [Keyer].
//
// It owns the exchanges (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA,
// INFORMATIONAL), the key schedule (prf+, SKEYSEED, KEYMAT), the DH groups
// (RFC 5903, RFC 8031, RFC 3526 with RFC 6989 checks), SK payload
// protection (RFC 5282 AEADs, RFC 7634 ChaCha20-Poly1305, AES-CBC with
// HMAC-SHA2 per RFC 4868), retransmission, DPD and DELETE.
//
// It does not own sockets or ESP: messages travel through a [Conn] (the
// tunnel's UDP-4500 socket demultiplexed by the non-ESP marker, RFC 3948),
// and packets never pass through here. It forces UDP encapsulation with a
// NAT_DETECTION_SOURCE_IP over a random address, because an unprivileged
// process cannot send IP protocol 50. It knows nothing of DNS.
package ike
