package doq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/laminadns/lamina/tlsconf/tlsconftest"
)

// TestShutdownClosesIdleConns: Shutdown closes connections with
// DOQ_NO_ERROR (RFC 9250 §5.5) once their streams are answered, including
// connections with no stream in flight, instead of leaving clients to find
// out at the idle timeout.
func TestShutdownClosesIdleConns(t *testing.T) {
	e := start(t, false, Config{IdleTimeout: time.Minute})
	c := e.mustDial(t, nil)
	if _, err := exchange(c, mustPack(query(tlsconftest.SiteName, dns.TypeA))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
		t.Fatal("connection still open after Shutdown")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &ae) || !ae.Remote || ae.ErrorCode != NoError {
		t.Errorf("connection ended with %v, want the server's DOQ_NO_ERROR", err)
	}
}
