package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// Errors callers branch on. The resolver maps them to Extended DNS Errors
// (RFC 8914): ErrAllDown to 22 No Reachable Authority, ErrTimeout to 22 or
// 23 Network Error. Every error of this package wraps one of them, a context
// error, net.ErrClosed, or a network error from the [Network].
var (
	// ErrAllDown means every upstream of a [Group] is marked down, so the
	// query was not sent anywhere. It is returned at once, without waiting
	// for timeouts.
	ErrAllDown = errors.New("upstream: all upstreams are down")

	// ErrTimeout means no matching answer arrived before the upstream's
	// Timeout or the context's deadline. It also matches
	// os.ErrDeadlineExceeded through errors.Is.
	ErrTimeout error = timeoutError{}

	// ErrUnsupported is returned by [Parse] for a scheme or option this build
	// does not implement.
	ErrUnsupported = errors.New("upstream: unsupported")
)

type timeoutError struct{}

func (timeoutError) Error() string        { return "upstream: timed out waiting for an answer" }
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// ctxError turns a finished exchange's context into the error to return:
// a deadline becomes ErrTimeout (still matching context.DeadlineExceeded), a
// cancellation stays context.Canceled.
func ctxError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (%w)", ErrTimeout, err)
	}
	return err
}

// closedError is returned by exchanges on a closed upstream.
func closedError(u fmt.Stringer) error {
	return fmt.Errorf("exchanging with %s: %w", u, net.ErrClosed)
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}
