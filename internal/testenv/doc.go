// Package testenv holds what Lamina's tests share about their environment:
// finding the external programs they drive (NSD, Unbound, kdig, dnsperf,
// strongSwan …) and the rule that under CI=true a missing tool fails the test
// instead of skipping it.
package testenv
