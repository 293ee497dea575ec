package h2

import (
	"time"

	"golang.org/x/net/http2"
)

// handle processes one frame on the read loop; a code other than
// ErrCodeNo is a connection error (RFC 9113 §5.4.1).
func (c *conn) handle(f http2.Frame) http2.ErrCode {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.mu.Lock()
			c.wfr.WritePing(true, f.Data)
			c.mu.Unlock()
		}
	case *http2.RSTStreamFrame:
		return c.onReset(f)
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goingAway = true
		c.mu.Unlock()
	case *http2.PushPromiseFrame:
		return http2.ErrCodeProtocol // clients never push (RFC 9113 §8.4)
	}
	// PRIORITY and unknown frame types are ignored (RFC 9113 §5.5, §5.3.2).
	return http2.ErrCodeNo
}

func (c *conn) onSettings(f *http2.SettingsFrame) http2.ErrCode {
	if f.IsAck() {
		return http2.ErrCodeNo
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	code := http2.ErrCodeNo
	f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			code = http2.ErrCodeProtocol
			if ce, ok := err.(http2.ConnectionError); ok {
				code = http2.ErrCode(ce)
			}
			return err
		}
		switch st.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(st.Val) - c.peerInit
			c.peerInit = int64(st.Val)
			for _, s := range c.streams {
				s.sendWin += delta
				if s.sendWin > 1<<31-1 {
					code = http2.ErrCodeFlowControl
				}
			}
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(st.Val)
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(st.Val)
		}
		return nil
	})
	if code != http2.ErrCodeNo {
		return code
	}
	c.wfr.WriteSettingsAck()
	c.drainLocked()
	return http2.ErrCodeNo
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) http2.ErrCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendConn += int64(f.Increment)
		if c.sendConn > 1<<31-1 {
			return http2.ErrCodeFlowControl
		}
	} else if s := c.streams[f.StreamID]; s != nil {
		s.sendWin += int64(f.Increment)
		if s.sendWin > 1<<31-1 {
			delete(c.streams, s.id)
			c.wfr.WriteRSTStream(s.id, http2.ErrCodeFlowControl)
			c.unblockLocked(s)
			return http2.ErrCodeNo
		}
	} else if f.StreamID > c.lastID.Load() {
		return http2.ErrCodeProtocol // an idle stream (RFC 9113 §5.1)
	}
	c.drainLocked()
	return http2.ErrCodeNo
}

// onReset handles RST_STREAM and bounds how fast a client may cancel
// streams: opening and resetting streams in a loop costs the server work
// the client never waits for (CVE-2023-44487).
func (c *conn) onReset(f *http2.RSTStreamFrame) http2.ErrCode {
	if f.StreamID > c.lastID.Load() {
		return http2.ErrCodeProtocol
	}
	if c.tooManyResets() {
		c.s.log.Debug("rapid reset: closing", "client", c.tpl.Client)
		return http2.ErrCodeEnhanceYourCalm
	}
	c.mu.Lock()
	if s := c.streams[f.StreamID]; s != nil {
		delete(c.streams, s.id)
		c.unblockLocked(s)
		if s.cancel != nil {
			s.cancel()
		}
	}
	c.mu.Unlock()
	return http2.ErrCodeNo
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) http2.ErrCode {
	id := f.StreamID
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		c.mu.Unlock()
		// Trailers: they must end the request (RFC 9113 §8.1).
		if s.ended || !f.StreamEnded() {
			return http2.ErrCodeProtocol
		}
		s.ended = true
		c.dispatch(s)
		return http2.ErrCodeNo
	}
	if id%2 == 0 || id <= c.lastID.Load() {
		c.mu.Unlock()
		return http2.ErrCodeProtocol // reused or server-initiated stream ID, or one already closed
	}
	c.lastID.Store(id)
	refuse := c.goingAway || len(c.streams) >= c.s.cfg.MaxConcurrentStreams
	c.mu.Unlock()
	if refuse {
		// RFC 9113 §5.1.2; counts as a reset for the flood bound, since a
		// client that ignores the limit costs as much as one resetting.
		c.resetStream(id, http2.ErrCodeRefusedStream)
		if c.tooManyResets() {
			c.s.log.Debug("stream flood: closing", "client", c.tpl.Client)
			return http2.ErrCodeEnhanceYourCalm
		}
		return http2.ErrCodeNo
	}
	c.lastStream = time.Now()
	s := &stream{id: id, ended: f.StreamEnded()}
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			s.method = hf.Value
		case ":path":
			s.path = hf.Value
		case ":authority":
			s.authority = hf.Value
		case "content-type":
			s.ctype = hf.Value
		}
	}
	if s.method == "" || s.path == "" || s.path[0] != '/' && s.path != "*" {
		c.resetStream(id, http2.ErrCodeProtocol) // malformed (RFC 9113 §8.3.1)
		return http2.ErrCodeNo
	}
	if f.Truncated {
		c.status(nil, id, 431, "request header fields too large")
		c.mu.Lock()
		c.endLocked(id)
		c.mu.Unlock()
		return http2.ErrCodeNo
	}
	if s.ended && s.method == "GET" && c.tryInlineGET(s) {
		return http2.ErrCodeNo
	}
	s.fields = append(s.fields, f.Fields...)
	c.mu.Lock()
	s.sendWin = c.peerInit
	c.streams[id] = s
	c.mu.Unlock()
	if s.ended {
		c.dispatch(s)
	}
	return http2.ErrCodeNo
}

func (c *conn) onData(f *http2.DataFrame) http2.ErrCode {
	// Flow control counts the whole frame, padding included (RFC 9113 §6.9).
	if n := f.Header().Length; n > 0 {
		c.recvUnacked += n
		if c.recvUnacked >= recvConnWindow/4 {
			c.mu.Lock()
			c.wfr.WriteWindowUpdate(0, c.recvUnacked)
			c.mu.Unlock()
			c.recvUnacked = 0
		}
	}
	c.mu.Lock()
	s := c.streams[f.StreamID]
	c.mu.Unlock()
	switch {
	case s == nil && f.StreamID > c.lastID.Load():
		return http2.ErrCodeProtocol
	case s == nil:
		return http2.ErrCodeNo // a stream already answered or reset: ignore
	case s.ended:
		c.resetStream(s.id, http2.ErrCodeStreamClosed)
		return http2.ErrCodeNo
	}
	data := f.Data()
	s.bodyLen += len(data)
	if s.bodyLen > maxBody {
		// Answer now rather than read a body that will be refused anyway,
		// then stop the upload (RFC 9113 §8.1).
		c.mu.Lock()
		delete(c.streams, s.id)
		c.mu.Unlock()
		c.status(nil, s.id, 413, "body larger than 65535 bytes")
		c.resetStream(s.id, http2.ErrCodeNo)
		return http2.ErrCodeNo
	}
	s.body = append(s.body, data...)
	if f.StreamEnded() {
		s.ended = true
		c.dispatch(s)
	}
	return http2.ErrCodeNo
}

func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		delete(c.streams, id)
		c.unblockLocked(s)
		if s.cancel != nil {
			s.cancel()
		}
	}
	c.wfr.WriteRSTStream(id, code)
	c.mu.Unlock()
}

// tooManyResets counts a stream reset by the client or refused by us and
// reports whether the client went over Config.MaxResetsPerSecond.
func (c *conn) tooManyResets() bool {
	now := time.Now()
	if now.Sub(c.resetStart) > time.Second {
		c.resetStart, c.resets = now, 0
	}
	c.resets++
	return c.resets > c.s.cfg.MaxResetsPerSecond
}
