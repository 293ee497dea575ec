// Package ike is Lamina's IKEv2 initiator (RFC 7296): it brings up an IKE SA
// with a gateway, authenticates, negotiates CHILD_SAs and keeps them alive,
// and hands each CHILD_SA's keys to the ESP data plane through [Keyer].
//
// It owns the exchanges (IKE_SA_INIT with INVALID_KE_PAYLOAD and COOKIE
// retries, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL), the key schedule
// (prf+, SKEYSEED, KEYMAT), the DH groups (RFC 5903 ECP, RFC 8031 X25519,
// RFC 3526 MODP-2048 with RFC 6989 checks), SK payload protection (RFC 5282
// AES-GCM, RFC 7634 ChaCha20-Poly1305, AES-CBC with HMAC-SHA2 per RFC
// 4868), PSK and X.509 authentication (RFC 7427 signatures), fragmentation
// (RFC 7383), the configuration payload for a virtual IP, traffic selector
// narrowing, rekeying of CHILD_SAs and the IKE SA in both directions,
// retransmission, DPD and DELETE.
//
// It does not own sockets or ESP: messages travel through a [Conn] (the
// tunnel's UDP-4500 socket demultiplexed by the non-ESP marker, RFC 3948),
// and packets never pass through here. It forces UDP encapsulation with a
// NAT_DETECTION_SOURCE_IP over a random address, because an unprivileged
// process cannot send IP protocol 50. Re-establishing a lost IKE SA is the
// caller's job (package ipsec does it with backoff). It knows nothing of
// DNS.
//
// Simultaneous rekeys of a CHILD_SA or of the IKE SA are settled by the
// lowest-nonce rule (RFC 7296 §2.8.1, §2.8.2). Not implemented: MOBIKE
// (RFC 4555), EAP, childless IKE SAs, and extra CHILD_SAs beyond the first
// (a gateway's request for one is refused with NO_ADDITIONAL_SAS).
package ike
