package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pipeConn is a plaintext netConn for fuzzing the frame reader without TLS.
type pipeConn struct{ net.Conn }

func (pipeConn) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// frames encodes seed inputs: what follows the client preface.
func frames(write func(fr *http2.Framer, enc func(kv ...string) []byte)) []byte {
	var buf, hb bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	he := hpack.NewEncoder(&hb)
	enc := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i < len(kv); i += 2 {
			he.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	write(fr, enc)
	return buf.Bytes()
}

// FuzzFrames feeds arbitrary frames to a connection after a valid preface:
// no panic, no hang, no goroutine left behind (TestMain's goleak).
func FuzzFrames(f *testing.F) {
	get := getURL("/dns-query", query("h1.bench.test.", dns.TypeA))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
			BlockFragment: enc(":method", "GET", ":scheme", "https", ":path", get)})
		fr.WritePing(false, [8]byte{1})
		fr.WriteWindowUpdate(0, 1000)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: false,
			BlockFragment: enc(":method", "POST", ":scheme", "https", ":path", "/dns-query")})
		fr.WriteContinuation(3, true, enc("content-type", mimeDNSMessage))
		fr.WriteDataPadded(3, false, query("h2.bench.test.", dns.TypeA)[:5], []byte{0, 0, 0})
		fr.WriteData(3, true, query("h2.bench.test.", dns.TypeA)[5:])
		fr.WriteWindowUpdate(3, 50)
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, EndHeaders: true,
			BlockFragment: enc(":method", "GET", ":scheme", "https", ":path", "/resolve?name=x")})
		fr.WriteData(5, false, []byte("xx"))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, EndHeaders: true, EndStream: true, BlockFragment: enc("x-trailer", "1")})
		fr.WritePriority(7, http2.PriorityParam{StreamDep: 5, Weight: 3})
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 5, 1, 5, 0, 0, 0, 1, 0x82, 0x84, 0x86, 0x41, 0x01})
	f.Add([]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := NewServer(Config{Handler: newCache(), IdleTimeout: 2 * time.Second, MaxConcurrentStreams: 4})
		if err != nil {
			t.Fatal(err)
		}
		sc, cc := net.Pipe()
		done := make(chan struct{})
		go func() {
			newConn(s, pipeConn{sc}).serve(context.Background())
			close(done)
		}()
		go io.Copy(io.Discard, cc)
		cc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cc.Write(append([]byte(http2.ClientPreface), data...))
		time.Sleep(time.Millisecond) // let queued work start before the client leaves
		cc.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end after the client left")
		}
	})
}
