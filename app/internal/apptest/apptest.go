// Package apptest opens what the application services run on in a test:
// a real SQLite store in t.TempDir(), its read models and the secrets kept
// beside the log, wired as serve wires them. Standard library testing
// only; nothing here is a stand-in.
package apptest

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	accountsproj "annals.im/annals/projections/accounts"
	archiveproj "annals.im/annals/projections/archive"
	mirrorsproj "annals.im/annals/projections/mirrors"
	roomsproj "annals.im/annals/projections/rooms"
)

// Env is one data directory's store, read models and secrets.
type Env struct {
	Store   *sqlite.Store
	DB      *sql.DB // read models, credentials, secrets
	Creds   *credentials.Store
	Secrets *secrets.Store
	Runner  *projections.Runner // every read model serve keeps
	IDs     *event.IDs
}

// Open returns a fresh Env, closed when the test ends.
func Open(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "annals.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	creds, err := credentials.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	pwds, err := secrets.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := projections.NewRunner(ctx, db, nil,
		accountsproj.Projection{}, archiveproj.Projection{}, archiveproj.UsageProjection{}, roomsproj.Projection{}, mirrorsproj.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Store: store, DB: db, Creds: creds, Secrets: pwds, Runner: runner, IDs: event.NewIDs()}
}

// InlineArchive keeps the archive read model in the store's write
// transactions, as serve does: a message is archived when its append
// returns.
func (e *Env) InlineArchive(t testing.TB) {
	t.Helper()
	ip, err := e.Runner.Inline(archiveproj.Name)
	if err != nil {
		t.Fatal(err)
	}
	e.Store.SetInline(ip)
}

// CatchUp brings every read model up to the log's head, as serve's
// runner does a moment after each append.
func (e *Env) CatchUp(t testing.TB) {
	t.Helper()
	if _, err := e.Runner.CatchUp(context.Background(), e.Store); err != nil {
		t.Fatal(err)
	}
}

// Events returns every event of stream.
func (e *Env) Events(t testing.TB, stream string) []event.Envelope {
	t.Helper()
	evs, err := e.Store.ReadStream(context.Background(), stream, 1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Last returns the last event of stream, failing the test when it has none.
func (e *Env) Last(t testing.TB, stream string) event.Envelope {
	t.Helper()
	evs := e.Events(t, stream)
	if len(evs) == 0 {
		t.Fatalf("stream %s is empty", stream)
	}
	return evs[len(evs)-1]
}
