// Package proxy owns Lamina's forwarding proxy: a SOCKS5 (RFC 1928, CONNECT
// only) and HTTP CONNECT (RFC 9110 §9.3.6) listener that lets the application
// request following a lookup ride the same network the lookup did — in
// practice the IPsec tunnel to an internal site.
//
// Every dial goes through the [Dialer] the listener was given, so a tunnel
// that refuses destinations outside its traffic selectors refuses them here
// too: nothing is ever sent in the clear as a fallback. Names in SOCKS5
// requests (ATYP 3) and in CONNECT authorities are resolved by the Resolve hook
// — Lamina's own resolver — so internal names resolve the way DNS clients see
// them.
//
// What it does not do: authentication (the listener is meant for loopback or a
// trusted segment and has an ACL), UDP ASSOCIATE, BIND, or plain HTTP
// forwarding.
package proxy
