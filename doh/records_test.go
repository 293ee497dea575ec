package doh

import (
	"bytes"
	"testing"
)

type writes [][]byte

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, append([]byte(nil), p...))
	return len(p), nil
}

func frame(typ, flags byte, payload int) []byte {
	return append([]byte{byte(payload >> 16), byte(payload >> 8), byte(payload), typ, flags, 0, 0, 0, 1},
		bytes.Repeat([]byte{0xAB}, payload)...)
}

// TestRecordConn: whatever the chunking of the server's writes, every write
// to TLS ends right after a frame with END_STREAM, nothing is lost or
// reordered, and frames without END_STREAM are not split off.
func TestRecordConn(t *testing.T) {
	settings := frame(0x4, 0, 6)
	resp1 := append(frame(frameHeaders, 0x4, 20), frame(frameData, flagEndStream, 51)...)
	resp2 := append(frame(frameHeaders, 0x4, 6), frame(frameData, flagEndStream, 0)...) // empty final DATA
	resp3 := frame(frameHeaders, 0x4|flagEndStream, 10)                                 // HEADERS-only response
	ping := frame(0x6, 0, 8)
	stream := bytes.Join([][]byte{settings, resp1, resp2, resp3, ping}, nil)
	want := [][]byte{append(append([]byte{}, settings...), resp1...), resp2, resp3, ping}
	for _, chunk := range []int{1, 2, 5, 9, 10, 64, len(stream)} {
		var w writes
		c := &recordConn{out: &w}
		for i := 0; i < len(stream); i += chunk {
			end := min(i+chunk, len(stream))
			if n, err := c.Write(stream[i:end]); err != nil || n != end-i {
				t.Fatalf("chunk %d: Write = %d, %v", chunk, n, err)
			}
		}
		if !bytes.Equal(bytes.Join(w, nil), stream) {
			t.Fatalf("chunk %d: bytes changed", chunk)
		}
		// Re-join writes between boundaries: the boundaries must be exactly
		// the response ends (a small chunk adds boundaries, never removes them).
		var got [][]byte
		var cur []byte
		for _, b := range w {
			cur = append(cur, b...)
			for _, r := range want[len(got):] {
				if len(cur) == len(r) {
					got = append(got, cur)
					cur = nil
				}
				break
			}
		}
		if len(got) != len(want) {
			t.Errorf("chunk %d: records end at the wrong places (%d of %d)", chunk, len(got), len(want))
		}
	}
}
