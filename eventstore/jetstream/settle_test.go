package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// settling asks again while nobody answers, stops at the first other
// outcome, and gives up when its context ends.
func TestSettling(t *testing.T) {
	calls := 0
	err := settling(context.Background(), func() error {
		if calls++; calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("settling: %v after %d calls, want nil after 3", err, calls)
	}
	other := errors.New("refused")
	calls = 0
	if err := settling(context.Background(), func() error { calls++; return other }); err != other || calls != 1 {
		t.Fatalf("another error: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*settlePause)
	defer cancel()
	start := time.Now()
	if err := settling(ctx, func() error { return nats.ErrNoResponders }); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("nobody ever answering: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("settling outlived its context")
	}
}
