package rooms_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections/rooms"
)

// Given two rooms, one with two occupants of whom one left, Count says 2
// rooms and 1 occupant.
func TestCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.OpenDB(filepath.Join(t.TempDir(), "rooms.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := rooms.Projection{}
	if _, err := db.ExecContext(ctx, p.Schema()); err != nil {
		t.Fatal(err)
	}
	if r, o, err := rooms.Count(ctx, db); err != nil || r != 0 || o != 0 {
		t.Fatalf("empty: %d rooms, %d occupants, %v", r, o, err)
	}
	ids := event.NewIDs()
	versions := map[string]uint64{}
	apply := func(r string, typ event.Type, data any) {
		t.Helper()
		e, err := event.New(ids, time.Now(), typ, room.Schema, "test", data)
		if err != nil {
			t.Fatal(err)
		}
		versions[r]++
		e.Stream, e.Version = room.Stream(r), versions[r]
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(ctx, tx, e); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	const hall, garden = "hall@conference.example.com", "garden@conference.example.com"
	romeo := room.Occupant{Account: "romeo@example.com", Nick: "Romeo", Role: room.Moderator}
	juliet := room.Occupant{Account: "juliet@example.com", Nick: "Juliet", Role: room.Participant}
	apply(hall, room.TypeCreated, room.Created{Owner: romeo.Account})
	apply(hall, room.TypeJoined, room.Joined{Occupant: romeo})
	apply(hall, room.TypeJoined, room.Joined{Occupant: juliet})
	apply(hall, room.TypeLeft, room.Left{Account: juliet.Account})
	apply(garden, room.TypeCreated, room.Created{Owner: juliet.Account})
	r, o, err := rooms.Count(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if r != 2 || o != 1 {
		t.Fatalf("%d rooms, %d occupants; want 2 and 1", r, o)
	}
}
