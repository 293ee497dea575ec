package upstream

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any test leaves a goroutine behind: every
// reader, dial, probe and race leg must end on Close or cancel.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
