package esp

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func TestReplayWindowSize(t *testing.T) {
	for _, c := range []struct{ ask, blocks int }{{1, 2}, {64, 2}, {65, 4}, {1024, 32}, {4096, 128}} {
		w := newReplayWindow(c.ask)
		if len(w.blocks) != c.blocks || w.size < uint64(c.ask) {
			t.Fatalf("window(%d): %d blocks, size %d", c.ask, len(w.blocks), w.size)
		}
	}
}

func TestReplayWindow(t *testing.T) {
	w := newReplayWindow(DefaultReplayWindow)
	size := w.size
	steps := []struct {
		seq uint64
		ok  bool
	}{
		{0, false},            // never valid
		{1, true}, {1, false}, // duplicate
		{3, true}, {2, true}, {2, false}, {3, false}, // reorder within the window
		{size + 10, true}, // jump ahead
		{10, false},       // now left of the window (10 <= top-size)
		{11, true},        // the oldest still inside
		{11, false},
		{size + 9, true}, {size + 10, false},
		{3*size + 1, true}, // jump beyond a whole window clears it
		{2*size + 2, true}, {2*size + 1, false},
	}
	for i, s := range steps {
		if got := w.update(s.seq); got != s.ok {
			t.Fatalf("step %d: update(%d) = %v, want %v (top %d)", i, s.seq, got, s.ok, w.top)
		}
	}
}

// A shuffled window-sized burst is accepted once, every copy refused.
func TestReplayReorderedBurst(t *testing.T) {
	w := newReplayWindow(DefaultReplayWindow)
	r := rand.New(rand.NewPCG(1, 2))
	base := uint64(1 << 20)
	w.update(base)
	seqs := r.Perm(DefaultReplayWindow)
	for _, s := range seqs {
		if !w.update(base + 1 + uint64(s)) {
			t.Fatalf("first copy of %d refused", base+1+uint64(s))
		}
	}
	for _, s := range seqs {
		if w.update(base + 1 + uint64(s)) {
			t.Fatalf("second copy of %d accepted", base+1+uint64(s))
		}
	}
}

func TestInferESN(t *testing.T) {
	w := newReplayWindow(1024)
	W := w.size
	cases := []struct {
		top  uint64
		lo   uint32
		want uint64
		ok   bool
	}{
		{0, 1, 1, true},
		{0, math.MaxUint32, 0, false}, // before the first packet
		{100, 50, 50, true},
		{5<<32 | 10, 5, 5<<32 | 5, true}, // case B, same subspace
		{5<<32 | 10, math.MaxUint32, 4<<32 | math.MaxUint32, true}, // case B, previous subspace
		{5<<32 | 10, uint32(10 - W + 1), 4<<32 | uint64(uint32(10-W+1)), true},
		{5<<32 | 1<<31, 1<<31 - 100, 5<<32 | (1<<31 - 100), true}, // case A, inside the window
		{5<<32 | 1<<31, 1<<31 + 100, 5<<32 | (1<<31 + 100), true}, // case A, ahead
		{5<<32 | math.MaxUint32 - 5, 3, 6<<32 | 3, true},          // case A, wrapped ahead
		{math.MaxUint32<<32 | math.MaxUint32 - 5, 3, 0, false},    // no subspace after the last
	}
	for i, c := range cases {
		w.top = c.top
		got, ok := w.inferESN(c.lo)
		if ok != c.ok || (ok && got != c.want) {
			t.Fatalf("case %d: inferESN(top %#x, lo %#x) = %#x %v, want %#x %v", i, c.top, c.lo, got, ok, c.want, c.ok)
		}
	}
}

// Packets straddling the 2^32 boundary, delivered out of order, all pass
// once and replays fail.
func TestESNWrapReorder(t *testing.T) {
	for _, s := range testSuites {
		out, in := pair(t, s, true, nil)
		out.seq.Store(math.MaxUint32 - 4)
		in.win.top = math.MaxUint32 - 5
		var pkts [][]byte
		for range 10 {
			pkts = append(pkts, seal(t, out, ipv4(40, 0), 4))
		}
		order := []int{0, 5, 1, 9, 2, 3, 8, 4, 7, 6}
		for _, i := range order {
			if _, _, err := in.Open(bytes.Clone(pkts[i])); err != nil {
				t.Fatalf("%s: packet %d: %v", s, i, err)
			}
		}
		for i := range pkts {
			if _, _, err := in.Open(bytes.Clone(pkts[i])); err != ErrReplay {
				t.Fatalf("%s: replay of %d: %v", s, i, err)
			}
		}
		if st := in.Stats(); st.Seq != math.MaxUint32+6 || st.Packets != 10 || st.ReplayDrops != 10 {
			t.Fatalf("%s: stats %+v", s, st)
		}
	}
}

// Without ESN a packet far behind the window is refused before decryption
// (its ICV is never computed: a forged one counts as a replay, not an auth
// failure).
func TestOldPacketRefusedBeforeDecryption(t *testing.T) {
	out, in := pair(t, testSuites[0], false, nil)
	old := seal(t, out, ipv4(40, 0), 4)
	out.seq.Store(uint64(DefaultReplayWindow) * 4)
	if _, _, err := in.Open(seal(t, out, ipv4(40, 0), 4)); err != nil {
		t.Fatal(err)
	}
	old[len(old)-1] ^= 1
	if _, _, err := in.Open(old); err != ErrReplay {
		t.Fatalf("old packet: %v", err)
	}
	if st := in.Stats(); st.ReplayDrops != 1 || st.AuthFailures != 0 {
		t.Fatalf("stats %+v", st)
	}
}
