package esp

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestSealOpenRoundTrip(t *testing.T) {
	for _, s := range testSuites {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", s, esn), func(t *testing.T) {
				out, in := pair(t, s, esn, nil)
				head, tail := out.Overhead()
				for _, n := range []int{20, 21, 22, 23, 24, 100, 1400} {
					p := ipv4(n, byte(n))
					pkt := seal(t, out, p, NextHeaderIPv4)
					ct := len(pkt) - head - out.t.icvLen
					if ct%out.t.blk != 0 || len(pkt) > head+n+tail {
						t.Fatalf("n=%d: ciphertext %d not aligned to %d, packet %d", n, ct, out.t.blk, len(pkt))
					}
					got, nh, err := in.Open(pkt)
					if err != nil || nh != NextHeaderIPv4 || !bytes.Equal(got, p) {
						t.Fatalf("n=%d: Open = %v nh=%d equal=%v", n, err, nh, bytes.Equal(got, p))
					}
				}
				p6 := ipv6(300)
				got, nh, err := in.Open(seal(t, out, p6, NextHeaderIPv6))
				if err != nil || nh != NextHeaderIPv6 || !bytes.Equal(got, p6) {
					t.Fatalf("IPv6: %v %d", err, nh)
				}
				if st := in.Stats(); st.Packets != 8 || drops(st) != 0 || st.Seq != 8 {
					t.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

func TestSealBuffer(t *testing.T) {
	out, in := pair(t, testSuites[0], false, nil)
	buf := make([]byte, 100)
	if _, err := out.Seal(buf, 8, 20, 4); err != ErrBuffer {
		t.Fatalf("short headroom: %v", err)
	}
	if _, err := out.Seal(buf, 16, 80, 4); err != ErrBuffer {
		t.Fatalf("short tailroom: %v", err)
	}
	if _, err := in.Seal(buf, 16, 20, 4); err != ErrDirection {
		t.Fatalf("inbound Seal: %v", err)
	}
	if _, _, err := out.Open(buf); err != ErrDirection {
		t.Fatalf("outbound Open: %v", err)
	}
}

// AEAD padding only 4-aligns; pad bytes are 1, 2, 3, …
func TestPaddingLayout(t *testing.T) {
	for _, s := range testSuites {
		out, _ := pair(t, s, false, nil)
		for n := 20; n < 40; n++ {
			pkt := seal(t, out, ipv4(n, 0), NextHeaderIPv4)
			body := decryptRaw(t, out, pkt)
			padLen := int(body[len(body)-2])
			if len(body) != n+padLen+2 || padLen >= out.t.blk {
				t.Fatalf("%s n=%d: body %d, pad %d", s, n, len(body), padLen)
			}
			for i := range padLen {
				if body[n+i] != byte(i+1) {
					t.Fatalf("%s n=%d: pad byte %d = %d", s, n, i, body[n+i])
				}
			}
		}
	}
}

func TestTFCPaddingTrimmed(t *testing.T) {
	out, in := pair(t, testSuites[0], false, nil)
	p := append(ipv4(60, 1), make([]byte, 40)...) // 40 bytes of TFC padding
	got, _, err := in.Open(seal(t, out, p, NextHeaderIPv4))
	if err != nil || !bytes.Equal(got, p[:60]) {
		t.Fatalf("IPv4 TFC: %v, %d bytes", err, len(got))
	}
	p6 := append(ipv6(100), 0, 0, 0, 0)
	got, _, err = in.Open(seal(t, out, p6, NextHeaderIPv6))
	if err != nil || !bytes.Equal(got, p6[:100]) {
		t.Fatalf("IPv6 TFC: %v, %d bytes", err, len(got))
	}
	// An inner length beyond the payload is malformed.
	bad := ipv4(60, 1)
	bad[3] = 200
	if _, _, err := in.Open(seal(t, out, bad, NextHeaderIPv4)); err != ErrMalformed {
		t.Fatalf("long inner length: %v", err)
	}
}

func TestDummyDropped(t *testing.T) {
	out, in := pair(t, testSuites[2], false, nil)
	if _, _, err := in.Open(seal(t, out, []byte("tfc"), NextHeaderDummy)); err != ErrDummy {
		t.Fatalf("dummy: %v", err)
	}
	if st := in.Stats(); st.DummyDrops != 1 || drops(st) != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBadPaddingCounted(t *testing.T) {
	for _, s := range testSuites {
		out, in := pair(t, s, false, nil)
		pkt := seal(t, out, ipv4(21, 0), NextHeaderIPv4) // needs padding
		pkt = reseal(t, out, pkt, func(body []byte) { body[len(body)-3]++ })
		if _, _, err := in.Open(pkt); err != ErrPadding {
			t.Fatalf("%s: %v", s, err)
		}
		pkt = reseal(t, out, seal(t, out, ipv4(21, 0), 4), func(body []byte) { body[len(body)-2] = 250 })
		if _, _, err := in.Open(pkt); err != ErrPadding {
			t.Fatalf("%s pad length: %v", s, err)
		}
		if st := in.Stats(); st.PadErrors != 2 || drops(st) != 2 {
			t.Fatalf("%s stats %+v", s, st)
		}
	}
}

func TestAuthFailureDoesNotAdvanceWindow(t *testing.T) {
	for _, s := range testSuites {
		out, in := pair(t, s, false, nil)
		pkt := seal(t, out, ipv4(64, 0), 4)
		bad := bytes.Clone(pkt)
		bad[len(bad)-1] ^= 0x80
		if _, _, err := in.Open(bad); err != ErrAuth {
			t.Fatalf("%s: tampered ICV: %v", s, err)
		}
		// The forged packet with the same number did not mark it.
		if _, _, err := in.Open(pkt); err != nil {
			t.Fatalf("%s: genuine packet after forgery: %v", s, err)
		}
		if _, _, err := in.Open(bytes.Clone(pkt)); err != ErrReplay {
			t.Fatalf("%s: duplicate: %v", s, err)
		}
		if st := in.Stats(); st.AuthFailures != 1 || st.ReplayDrops != 1 || st.Packets != 1 {
			t.Fatalf("%s stats %+v", s, st)
		}
	}
}

func TestWrongSPIAndTruncated(t *testing.T) {
	out, in := pair(t, testSuites[0], false, nil)
	pkt := seal(t, out, ipv4(64, 0), 4)
	other := bytes.Clone(pkt)
	other[3]++
	if _, _, err := in.Open(other); err != ErrSPI {
		t.Fatalf("wrong SPI: %v", err)
	}
	for n := range len(pkt) {
		if _, _, err := in.Open(bytes.Clone(pkt[:n])); err == nil {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	if st := in.Stats(); drops(st) != uint64(len(pkt))+1 {
		t.Fatalf("drops %d for %d bad packets: %+v", drops(st), len(pkt)+1, st)
	}
}

func TestSequenceExhaustion(t *testing.T) {
	var events []Event
	out, _ := pair(t, testSuites[0], false, func(c *Config) { c.OnEvent = func(e Event) { events = append(events, e) } })
	out.seq.Store(1<<31 - 1)
	seal(t, out, ipv4(20, 0), 4)
	if out.State() != StateSoft || len(events) != 1 || events[0].Kind != EventSoft || events[0].Reason != ReasonSequence {
		t.Fatalf("at 2^31: state %v events %+v", out.State(), events)
	}
	out.seq.Store(math.MaxUint32 - 1)
	seal(t, out, ipv4(20, 0), 4) // sequence number 2^32-1, the last one
	buf := make([]byte, 200)
	if _, err := out.Seal(buf, MaxHeadroom, 20, 4); err != ErrExpired {
		t.Fatalf("after 2^32-1: %v", err)
	}
	if out.State() != StateExpired || len(events) != 2 || events[1].Kind != EventHard {
		t.Fatalf("state %v events %+v", out.State(), events)
	}
	if _, err := out.Seal(buf, MaxHeadroom, 20, 4); err != ErrExpired {
		t.Fatalf("still expired: %v", err)
	}
	if st := out.Stats(); st.LifetimeDrops != 2 || len(events) != 2 {
		t.Fatalf("stats %+v events %d", st, len(events))
	}
	// With ESN the counter runs on past 2^32.
	outESN, inESN := pair(t, testSuites[0], true, nil)
	outESN.seq.Store(math.MaxUint32 - 1)
	inESN.win.top = math.MaxUint32 - 2
	for range 3 {
		if _, _, err := inESN.Open(seal(t, outESN, ipv4(20, 0), 4)); err != nil {
			t.Fatal(err)
		}
	}
	if outESN.State() != StateActive || inESN.Stats().Seq != 1<<32+1 {
		t.Fatalf("ESN: state %v seq %#x", outESN.State(), inESN.Stats().Seq)
	}
}

func TestVolumeAndTimeLifetimes(t *testing.T) {
	events := make(chan Event, 10)
	out, in := pair(t, testSuites[0], false, func(c *Config) {
		c.Lifetime = Lifetime{SoftPackets: 3, HardPackets: 5, SoftBytes: 1 << 40}
		c.OnEvent = func(e Event) { events <- e }
	})
	for i := range 5 {
		if _, _, err := in.Open(seal(t, out, ipv4(20, 0), 4)); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	want := []Event{{0x1234, Outbound, EventSoft, ReasonPackets}, {0x1234, Inbound, EventSoft, ReasonPackets},
		{0x1234, Outbound, EventHard, ReasonPackets}, {0x1234, Inbound, EventHard, ReasonPackets}}
	for _, w := range want {
		if e := <-events; e != w {
			t.Fatalf("event %+v, want %+v", e, w)
		}
	}
	buf := make([]byte, 200)
	if _, err := out.Seal(buf, MaxHeadroom, 20, 4); !errors.Is(err, ErrExpired) {
		t.Fatalf("Seal after hard: %v", err)
	}

	outEvents := make(chan Event, 10)
	out2, in2 := pair(t, testSuites[2], false, func(c *Config) {
		c.Lifetime = Lifetime{SoftBytes: 100, HardBytes: 1000, SoftTime: time.Millisecond, HardTime: time.Hour}
		c.OnEvent = func(e Event) {
			if e.Direction == Outbound {
				outEvents <- e
			}
		}
	})
	defer out2.Close()
	defer in2.Close()
	events = outEvents
	select {
	case e := <-events:
		if e.Kind != EventSoft || e.Reason != ReasonTime {
			t.Fatalf("time event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no soft time event")
	}
	for range 9 { // the ninth crosses 1000 bytes
		seal(t, out2, ipv4(120, 0), 4)
	}
	if e := <-events; e.Kind != EventHard || e.Reason != ReasonBytes {
		t.Fatalf("bytes event %+v", e)
	}
}

func TestParseSuite(t *testing.T) {
	for _, name := range []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256", "aes256-sha256"} {
		s, err := ParseSuite(name)
		if err != nil || s.String() != name || s.validate(false) != nil {
			t.Fatalf("%s: %v %v", name, s, err)
		}
	}
	if _, err := ParseSuite("3des"); err == nil {
		t.Fatal("3des accepted")
	}
	if _, err := New(Config{SPI: 0x1000, Direction: Inbound, Suite: Suite{Cipher: CipherAESCBC, KeyBits: 128}, EncKey: make([]byte, 16)}); err == nil {
		t.Fatal("AES-CBC without integrity accepted")
	}
	if _, err := New(Config{SPI: 1, Direction: Inbound, Suite: testSuites[0], EncKey: make([]byte, 20)}); err == nil {
		t.Fatal("reserved SPI accepted")
	}
	if _, err := New(Config{SPI: 0x1000, Direction: Inbound, Suite: testSuites[0], EncKey: make([]byte, 16)}); err == nil {
		t.Fatal("key without salt accepted")
	}
}
