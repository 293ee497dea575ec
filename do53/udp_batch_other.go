//go:build !linux

package do53

// Batched I/O is Linux-only; elsewhere every socket is read one datagram
// at a time.
const maxBatchQuery = udpBufSize

func (r *reader) loop() error { return r.readEach() }
