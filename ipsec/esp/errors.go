package esp

import "errors"

// Errors returned by Seal and Open. Every error from Open is a dropped packet
// and is counted in exactly one [Stats] field.
var (
	ErrReplay    = errors.New("esp: replayed or too old packet")         // Stats.ReplayDrops
	ErrAuth      = errors.New("esp: integrity check failed")             // Stats.AuthFailures
	ErrPadding   = errors.New("esp: bad padding")                        // Stats.PadErrors
	ErrMalformed = errors.New("esp: malformed packet")                   // Stats.DecryptErrors
	ErrSPI       = errors.New("esp: SPI does not match the SA")          // Stats.DecryptErrors
	ErrDummy     = errors.New("esp: dummy packet (next header 59)")      // Stats.DummyDrops
	ErrExpired   = errors.New("esp: SA expired (hard lifetime reached)") // Stats.LifetimeDrops
	ErrBuffer    = errors.New("esp: buffer lacks headroom or tailroom")  // caller bug, not counted
	ErrDirection = errors.New("esp: wrong direction for this SA")        // caller bug, not counted
)
