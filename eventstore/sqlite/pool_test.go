package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"annals.im/annals/eventstore/sqlite"
)

// The read-model pool is bounded, so that the server's descriptor reserve
// for the store (cmd/annals) holds however many clients query at once.
func TestOpenDBIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "annals.db")
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != sqlite.MaxReadConns {
		t.Fatalf("read-model pool allows %d connections, want %d", got, sqlite.MaxReadConns)
	}
}
