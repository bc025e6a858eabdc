package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

// counting is an inline read model that counts events per stream in a
// table of the store's file, and fails on an event of type "Poison".
type counting struct{ mu sync.Mutex }

func (*counting) Name() string { return "counting" }

func (*counting) Checkpoint(ctx context.Context, tx *sql.Tx) (event.Position, error) {
	var p uint64
	err := tx.QueryRowContext(ctx, `SELECT pos FROM counting_cp`).Scan(&p)
	return event.Position{Commit: p, Prepare: p}, err
}

func (*counting) Apply(ctx context.Context, tx *sql.Tx, evs []event.Envelope) error {
	for _, e := range evs {
		if e.Type == "Poison" {
			return errors.New("poisoned")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO counting (stream, n) VALUES (?, 1)
			ON CONFLICT (stream) DO UPDATE SET n = n + 1`, e.Stream); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE counting_cp SET pos = ?`, evs[len(evs)-1].Position.Commit)
	return err
}

func TestInline(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "annals.db"), sqlite.Options{Durability: sqlite.DurabilityFull, LazyHeads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sqlite.OpenDB(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE counting (stream TEXT PRIMARY KEY, n INTEGER NOT NULL);
		CREATE TABLE counting_cp (pos INTEGER NOT NULL); INSERT INTO counting_cp VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	ids := event.NewIDs()
	ev := func(typ event.Type) event.Envelope {
		e, err := event.New(ids, time.Now(), typ, 1, "", map[string]int{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	count := func(stream string) (n int) {
		db.QueryRow(`SELECT n FROM counting WHERE stream = ?`, stream).Scan(&n)
		return n
	}
	// Two events before the model is inline: caught up in the next batch.
	if _, err := s.Append(ctx, "a", eventstore.Any, ev("X"), ev("X")); err != nil {
		t.Fatal(err)
	}
	s.SetInline(&counting{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Append(ctx, "b", eventstore.Any, ev("X")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if count("a") != 2 || count("b") != 20 {
		t.Fatalf("counted a=%d b=%d, want 2 and 20", count("a"), count("b"))
	}
	// A read model that cannot apply an event fails the append: nothing
	// of it is stored, and the store goes on.
	if _, err := s.Append(ctx, "c", eventstore.NoStream, ev("Poison")); err == nil {
		t.Fatal("an append the read model refused succeeded")
	}
	if got, _ := s.ReadStream(ctx, "c", 1, 10); len(got) != 0 {
		t.Fatalf("refused event stored: %+v", got)
	}
	if _, err := s.Append(ctx, "c", eventstore.NoStream, ev("X")); err != nil || count("c") != 1 {
		t.Fatalf("after a refused append: %v, count %d", err, count("c"))
	}
}
