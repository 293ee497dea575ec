package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// pipe is DNS over TCP or TLS (RFC 7766 / 7858) with pipelining, driven by
// its reader: each answer read queues the next query, and queued queries go
// out in one write whenever the reader has nothing left to parse. No
// goroutine or channel per query, so the client stays cheap. Over UDP (for
// latency at low concurrency; dnsperf is the UDP load tool) every query is
// its own datagram and a lost one ends the connection's run.
type pipe struct {
	conn     net.Conn
	datagram bool
}

func dialPipe(ctx context.Context, network, addr string, tc *tls.Config) (*pipe, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if network == "udp" {
		return &pipe{conn: conn, datagram: true}, nil
	}
	if tc != nil {
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tconn
	}
	return &pipe{conn: conn}, nil
}

// run keeps window queries in flight (slot i uses message ID i) until w is
// exhausted and every answer is in, or nothing arrives for timeout.
func (p *pipe) run(w *work, window int, t *tally, timeout time.Duration) {
	sent := make([]time.Time, window)
	asked := make([][]byte, window) // the query in flight on each ID
	wbuf := make([]byte, 0, 64<<10)
	inflight := 0
	queue := func(id int) {
		q, ok := w.take()
		if !ok {
			return
		}
		if !p.datagram {
			wbuf = binary.BigEndian.AppendUint16(wbuf, uint16(len(q)))
		}
		at := len(wbuf)
		wbuf = append(wbuf, q...)
		binary.BigEndian.PutUint16(wbuf[at:], uint16(id))
		sent[id] = time.Now()
		asked[id] = q
		inflight++
		if p.datagram {
			if _, err := p.conn.Write(wbuf); err != nil {
				t.errs = append(t.errs, err)
			}
			wbuf = wbuf[:0]
		}
	}
	for id := range window {
		queue(id)
	}
	r := bufio.NewReaderSize(p.conn, 64<<10)
	var hdr [2]byte
	msg := make([]byte, 65535)
	for inflight > 0 {
		if r.Buffered() == 0 {
			if len(wbuf) > 0 {
				if _, err := p.conn.Write(wbuf); err != nil {
					t.errs = append(t.errs, err)
					t.lost += inflight
					return
				}
				wbuf = wbuf[:0]
			}
			p.conn.SetReadDeadline(time.Now().Add(timeout))
		}
		var n int
		var err error
		if p.datagram {
			n, err = p.conn.Read(msg)
		} else if _, err = io.ReadFull(r, hdr[:]); err == nil {
			n = int(binary.BigEndian.Uint16(hdr[:]))
			_, err = io.ReadFull(r, msg[:n])
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.lost += inflight
			} else {
				t.errs = append(t.errs, err)
			}
			return
		}
		if n < 12 {
			t.errs = append(t.errs, fmt.Errorf("%d-byte answer", n))
			return
		}
		id := int(binary.BigEndian.Uint16(msg))
		if id >= window || sent[id].IsZero() {
			t.errs = append(t.errs, fmt.Errorf("answer with unexpected ID %d", id))
			return
		}
		if err := check(asked[id], msg[:n]); err != nil {
			t.errs = append(t.errs, err)
			return
		}
		now := time.Now()
		t.ok(now.Sub(sent[id]), int(msg[3]&0x0f), now)
		sent[id] = time.Time{}
		inflight--
		queue(id)
	}
}

func (p *pipe) close() { p.conn.Close() }

// check makes sure resp answers q: QR set, one question, the question's
// bytes as asked (the queries carry no EDNS, so the question ends q), and at
// least one answer record for NOERROR, so that a fast wrong answer cannot
// pass for throughput.
func check(q, resp []byte) error {
	switch {
	case len(resp) < len(q) || resp[2]&0x80 == 0:
		return fmt.Errorf("not an answer (%d bytes)", len(resp))
	case binary.BigEndian.Uint16(resp[4:]) != 1 || !bytes.Equal(resp[12:len(q)], q[12:]):
		return fmt.Errorf("answer to another question")
	case resp[3]&0x0f == 0 && binary.BigEndian.Uint16(resp[6:]) == 0:
		return fmt.Errorf("NOERROR without answer records")
	}
	return nil
}

// doqClient is DNS over QUIC (RFC 9250): one connection, one bidirectional
// stream per query, message ID 0, a 2-byte length prefix, FIN after the query.
type doqClient struct{ conn *quic.Conn }

func dialDoQ(ctx context.Context, addr string, tc *tls.Config) (*doqClient, error) {
	conn, err := quic.DialAddr(ctx, addr, tc, &quic.Config{MaxIdleTimeout: time.Minute, KeepAlivePeriod: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return &doqClient{conn: conn}, nil
}

// run is one outstanding query slot: ask, wait, ask again until w is done. A
// query unanswered after timeout is lost and retires the slot.
func (d *doqClient) run(w *work, t *tally, timeout time.Duration) {
	frame := make([]byte, 0, 514)
	msg := make([]byte, 65535)
	var hdr [2]byte
	for {
		q, ok := w.take()
		if !ok {
			return
		}
		begin := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), begin.Add(timeout))
		st, err := d.conn.OpenStreamSync(ctx)
		cancel()
		if err != nil {
			d.fail(t, err)
			return
		}
		st.SetDeadline(begin.Add(timeout))
		frame = binary.BigEndian.AppendUint16(frame[:0], uint16(len(q)))
		frame = append(frame, q...)
		_, err = st.Write(frame)
		if err == nil {
			// The server may answer and send STOP_SENDING before our FIN
			// goes out; Close then fails, and the answer is still there.
			st.Close()
			_, err = io.ReadFull(st, hdr[:])
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if err == nil {
			_, err = io.ReadFull(st, msg[:n])
		}
		if err == nil && (n < 12 || msg[0] != 0 || msg[1] != 0) {
			err = fmt.Errorf("bad DoQ answer: %d bytes, ID %d (RFC 9250 §4.2.1 wants 0)", n, binary.BigEndian.Uint16(msg))
		}
		if err == nil {
			err = check(q, msg[:n])
		}
		if err != nil {
			st.CancelRead(0)
			d.fail(t, err)
			return
		}
		now := time.Now()
		t.ok(now.Sub(begin), int(msg[3]&0x0f), now)
	}
}

func (d *doqClient) fail(t *tally, err error) {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		t.lost++
		return
	}
	t.errs = append(t.errs, err)
}

func (d *doqClient) close() { d.conn.CloseWithError(0, "") }
