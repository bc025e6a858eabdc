package event

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// IDs generates ULIDs that increase strictly within one process, even for
// IDs made in the same millisecond. It is safe for concurrent use; create one
// per process and pass it to whoever makes events.
type IDs struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

// NewIDs returns a generator seeded from crypto/rand.
func NewIDs() *IDs {
	return &IDs{entropy: ulid.Monotonic(rand.Reader, 0)}
}

// New returns a ULID with t's millisecond timestamp.
func (g *IDs) New(t time.Time) ulid.ULID {
	g.mu.Lock()
	defer g.mu.Unlock()
	// MustNew panics only when a millisecond's monotonic space (2^80) runs
	// out or crypto/rand fails; neither is an input error.
	return ulid.MustNew(ulid.Timestamp(t), g.entropy)
}
