// Package tlsconftest holds fixtures the encrypted transports' tests share: a
// tlsconf.Provider with a local CA and ECH in a temporary state directory, a
// static resolver.Handler that also serves Lamina's self-advertisement
// records, and client tls.Configs that trust the CA and optionally use ECH.
//
// It is for tests only; nothing in Lamina imports it outside _test files.
package tlsconftest
