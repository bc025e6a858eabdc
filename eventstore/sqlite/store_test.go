package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/eventstore/storetest"
)

func open(d sqlite.Durability) storetest.Open {
	return func(t testing.TB, dir string) eventstore.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "annals.db"), sqlite.Options{Durability: d})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestConformanceFull(t *testing.T)   { storetest.Run(t, open(sqlite.DurabilityFull)) }
func TestConformanceNormal(t *testing.T) { storetest.Run(t, open(sqlite.DurabilityNormal)) }
