package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/eventstore/storetest"
)

func open(d sqlite.Durability, prealloc int64) storetest.Open {
	return func(t testing.TB, dir string) eventstore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "annals.db"),
			sqlite.Options{Durability: d, PreallocateWAL: prealloc})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// Full runs as a server does, with a preallocated WAL, so the crash test
// also proves that recovery stops at the zeros after the last frame.
func TestConformanceFull(t *testing.T)   { storetest.Run(t, open(sqlite.DurabilityFull, 4<<20)) }
func TestConformanceNormal(t *testing.T) { storetest.Run(t, open(sqlite.DurabilityNormal, 0)) }
