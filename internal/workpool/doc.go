// Package workpool runs short jobs on goroutines that outlive one job.
//
// A new goroutine starts with a small stack, and a DNS query's call chain
// (decode, policy, upstream exchange, encode) grows it several times; on
// cache misses copying stacks was about a tenth of the server's CPU. A
// pooled goroutine keeps its grown stack for the next job. Idle goroutines
// exit after a while, so a burst does not pin its stacks for good.
package workpool
