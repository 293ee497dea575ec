// Package wire encodes and decodes IKEv2 messages (RFC 7296 §3): the fixed
// header, the generic payload chain and every payload an initiator meets (SA,
// KE, Nonce, ID, AUTH, N, D, TS, CP, CERT, CERTREQ, VID, SK and the RFC 7383
// SKF fragment).
//
// It is a pure codec: it never encrypts, decrypts, or decides anything. The
// SK and SKF payloads are carried as opaque bodies; package ike seals and opens
// them and feeds the plaintext back to [ParsePayloads]. Decoding is strict —
// every length is checked and a malformed message yields an error naming the
// payload and the problem — because its input comes from the network before
// any authentication.
package wire
