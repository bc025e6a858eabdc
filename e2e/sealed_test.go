package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"annals.im/annals/adapters/keys"
	"annals.im/annals/adapters/sealing"
	"annals.im/annals/eventstore/sqlite"
)

// openKeyed opens the embedded store of a data directory as another
// annals process does: with the codec that opens sealed content, its keys
// in the store's file under the server secret beside it.
func openKeyed(t *testing.T, data string) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(data, "annals.db")
	secret, err := os.ReadFile(filepath.Join(data, "fake-salt.key"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := keys.Derive(secret, keys.ContentKeys)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	k, err := sealing.OpenSQLKeys(ctx, db, kek)
	if err != nil {
		t.Fatal(err)
	}
	store.SetCodec(sealing.New(k, true))
	return store
}
