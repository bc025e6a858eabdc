package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/eventstore/storetest"
)

func open(opts sqlite.Options) storetest.Open {
	return func(t testing.TB, dir string) eventstore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "annals.db"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// Full runs as a server does, with a preallocated WAL and lazy heads, so
// the crash test also proves that recovery stops at the zeros after the
// last frame and that heads not yet recorded are found after a SIGKILL.
func TestConformanceFull(t *testing.T) {
	storetest.Run(t, open(sqlite.Options{Durability: sqlite.DurabilityFull, PreallocateWAL: 4 << 20, LazyHeads: true}))
}

// Normal runs as one-shot commands do: heads recorded in every batch.
func TestConformanceNormal(t *testing.T) {
	storetest.Run(t, open(sqlite.Options{Durability: sqlite.DurabilityNormal}))
}

// TestConformanceCodec checks sealing and opening (storetest.RunCodec),
// the codec given at Open.
func TestConformanceCodec(t *testing.T) {
	storetest.RunCodec(t, func(t testing.TB, dir string, c eventstore.Codec) eventstore.Store {
		return open(sqlite.Options{Durability: sqlite.DurabilityNormal, Codec: c})(t, dir)
	})
}
