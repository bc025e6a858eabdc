package sqlite_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

// CatchUpInline brings an inline read model up to what another process
// appended without an append of this one; Scrub leaves no deleted row's
// bytes in the database file or its WAL, which a serving store then
// preallocates again.
func TestCatchUpInlineAndScrub(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "annals.db")
	const wal = 1 << 20
	s, err := sqlite.Open(ctx, path, sqlite.Options{Durability: sqlite.DurabilityFull, LazyHeads: true, PreallocateWAL: wal})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE counting (stream TEXT PRIMARY KEY, n INTEGER NOT NULL);
		CREATE TABLE counting_cp (pos INTEGER NOT NULL); INSERT INTO counting_cp VALUES (0);
		CREATE TABLE notes (body TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	s.SetInline(&counting{})
	ids := event.NewIDs()
	e, _ := event.New(ids, time.Now(), "X", 1, "", map[string]int{})
	if _, err := s.Append(ctx, "mine", eventstore.Any, e); err != nil {
		t.Fatal(err)
	}

	// Another process appends; nothing more is appended here.
	other, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := event.New(ids, time.Now(), "X", 1, "", map[string]int{})
	if _, err := other.Append(ctx, "theirs", eventstore.Any, e2); err != nil {
		t.Fatal(err)
	}
	other.Close()
	var n int
	db.QueryRow(`SELECT n FROM counting WHERE stream = 'theirs'`).Scan(&n)
	if n != 0 {
		t.Fatal("the inline model caught up without being asked: the test proves nothing")
	}
	if err := s.CatchUpInline(ctx); err != nil {
		t.Fatal(err)
	}
	db.QueryRow(`SELECT n FROM counting WHERE stream = 'theirs'`).Scan(&n)
	if n != 1 {
		t.Fatalf("after CatchUpInline the model counts %d events of the other process's stream", n)
	}

	// Rows written and deleted: their bytes are in the WAL until Scrub.
	secret := "SCRUB-ME-" + ids.New(time.Now()).String()
	if _, err := db.Exec(`INSERT INTO notes VALUES (?)`, secret); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM notes`); err != nil {
		t.Fatal(err)
	}
	inFiles := func() []string {
		var found []string
		for _, f := range []string{path, path + "-wal"} {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte(secret)) {
				found = append(found, filepath.Base(f))
			}
		}
		return found
	}
	if len(inFiles()) == 0 {
		t.Fatal("the deleted row is nowhere before the scrub: the test proves nothing")
	}
	if err := s.Scrub(ctx); err != nil {
		t.Fatal(err)
	}
	if f := inFiles(); len(f) > 0 {
		t.Fatalf("after Scrub the deleted row is still in %v", f)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() < wal {
		t.Fatalf("the WAL is not preallocated again: %v %v", fi, err)
	}
	// The store still writes and reads.
	e3, _ := event.New(ids, time.Now(), "X", 1, "", map[string]int{})
	if _, err := s.Append(ctx, "mine", eventstore.Any, e3); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ReadStream(ctx, "mine", 1, 10); err != nil || len(evs) != 2 {
		t.Fatalf("after the scrub: %d events, %v", len(evs), err)
	}
}
