package esp

// replayWindow is an RFC 6479 anti-replay bitmap: a ring of 64-bit blocks
// where advancing the window clears whole blocks instead of shifting bits.
// It holds 64-bit sequence numbers; with ESN the caller first infers the
// high half (RFC 4303 Appendix A2). Not safe for concurrent use.
type replayWindow struct {
	blocks []uint64
	mask   uint64 // len(blocks)-1
	size   uint64 // packets covered below top: (len(blocks)-1)*64
	top    uint64 // highest accepted sequence number, 0 before the first
}

func newReplayWindow(packets int) replayWindow {
	n := 2
	for uint64(n-1)*64 < uint64(packets) {
		n *= 2
	}
	return replayWindow{blocks: make([]uint64, n), mask: uint64(n - 1), size: uint64(n-1) * 64}
}

// check reports whether seq is new and inside the window. It does not mark
// seq: that happens in update, after the ICV verified (RFC 4303 §3.4.3).
func (w *replayWindow) check(seq uint64) bool {
	if seq == 0 {
		return false // sequence numbers start at 1 (RFC 4303 §3.3.3)
	}
	if seq > w.top {
		return true
	}
	if w.top-seq >= w.size {
		return false
	}
	return w.blocks[(seq/64)&w.mask]&(1<<(seq%64)) == 0
}

// update marks seq as received, sliding the window forward when seq is the
// new top. It reports false for a duplicate that raced past check.
func (w *replayWindow) update(seq uint64) bool {
	if !w.check(seq) {
		return false
	}
	if seq > w.top {
		cur, next := w.top/64, seq/64
		diff := next - cur
		if diff > uint64(len(w.blocks)) {
			diff = uint64(len(w.blocks))
		}
		for i := uint64(1); i <= diff; i++ {
			w.blocks[(cur+i)&w.mask] = 0
		}
		w.top = seq
	}
	w.blocks[(seq/64)&w.mask] |= 1 << (seq % 64)
	return true
}

// inferESN rebuilds the 64-bit sequence number from the transmitted low 32
// bits relative to the window (RFC 4303 Appendix A2.2). ok is false when the
// number would lie before the first packet of the SA.
func (w *replayWindow) inferESN(lo uint32) (seq uint64, ok bool) {
	tl, th := uint32(w.top), uint32(w.top>>32)
	win := uint32(w.size)
	if w.size >= 1<<32 {
		win = 1<<32 - 1
	}
	bottom := tl - win + 1 // wraps when the window spans two subspaces
	if tl >= win-1 {
		// Case A: the window lies within one subspace.
		if lo >= bottom {
			return uint64(th)<<32 | uint64(lo), true
		}
		if th == 1<<32-1 {
			return 0, false
		}
		return uint64(th+1)<<32 | uint64(lo), true
	}
	// Case B: the window spans the previous subspace.
	if lo >= bottom {
		if th == 0 {
			return 0, false
		}
		return uint64(th-1)<<32 | uint64(lo), true
	}
	return uint64(th)<<32 | uint64(lo), true
}
