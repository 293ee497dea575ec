package esp

import (
	"fmt"
	"testing"
	"time"
)

var benchSizes = []int{100, 1400}

// espOp returns a function that seals and opens one packet of n bytes.
func espOp(b *testing.B, s Suite, n int) func() {
	out, in := pair(b, s, false, nil)
	p := ipv4(n, 0)
	buf := make([]byte, MaxHeadroom+n+MaxTailroom)
	return func() {
		copy(buf[MaxHeadroom:], p)
		pkt, err := out.Seal(buf, MaxHeadroom, n, NextHeaderIPv4)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := in.Open(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// bareOp is the floor: the same AEAD sealing and opening the same bytes in
// place with a fixed nonce, without ESP framing, padding, replay or counters.
func bareOp(b *testing.B, s Suite, n int) func() {
	out, _ := pair(b, s, false, nil)
	aead := out.t.aead
	p := ipv4(n, 0)
	buf := make([]byte, n+aead.Overhead())
	nonce, aad := make([]byte, 12), make([]byte, 8)
	return func() {
		copy(buf, p)
		ct := aead.Seal(buf[:0], nonce, buf[:n], aad)
		if _, err := aead.Open(ct[:0], nonce, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	for _, s := range testSuites {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", s, n), func(b *testing.B) {
				op := espOp(b, s, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					op()
				}
			})
		}
	}
}

func BenchmarkBareAEAD(b *testing.B) {
	for _, s := range testSuites[:3] {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", s, n), func(b *testing.B) {
				op := bareOp(b, s, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					op()
				}
			})
		}
	}
}

// BenchmarkOverhead times ESP and the bare AEAD in alternating rounds of the
// same run (noise hits both) and reports the ratio of their best rounds
// (target ≤ 1.3) and ESP's allocations per packet (target ≤ 1).
func BenchmarkOverhead(b *testing.B) {
	for _, s := range testSuites[:3] {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", s, n), func(b *testing.B) {
				esp, bare := espOp(b, s, n), bareOp(b, s, n)
				best := func(op func(), cur time.Duration) time.Duration {
					const k = 2000
					start := time.Now()
					for range k {
						op()
					}
					if d := time.Since(start) / k; cur == 0 || d < cur {
						return d
					}
					return cur
				}
				var e, r time.Duration
				for b.Loop() {
					e, r = best(esp, e), best(bare, r)
				}
				b.ReportMetric(float64(e)/float64(r), "x-bare")
				b.ReportMetric(float64(e), "esp-ns/pkt")
				b.ReportMetric(float64(r), "bare-ns/pkt")
				b.ReportMetric(testing.AllocsPerRun(100, esp), "allocs/pkt")
			})
		}
	}
}
