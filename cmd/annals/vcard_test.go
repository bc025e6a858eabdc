package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/app/accounts"
	"annals.im/annals/app/rooms"
	appvcard "annals.im/annals/app/vcard"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/vcard"
	"annals.im/annals/eventstore/sqlite"
)

// vcardStates opens the data directory's log as serve does and returns
// juliet's vCard and the hall's, folded from their streams; with set, it
// first sets them as the vCard features do.
func vcardStates(t *testing.T, dir string, set bool) (vcard.State, room.State) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "annals.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	creds, err := credentials.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := event.NewIDs()
	accts := accounts.New(store, creds, ids, accounts.Options{})
	vcards := appvcard.New(accts, ids)
	rms := rooms.New(store, ids, db, "conference.example.com")
	const (
		hall  = "hall@conference.example.com"
		photo = "<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==</BINVAL></PHOTO>"
	)
	if set {
		if _, _, err := vcards.SetVCard(ctx, "juliet@example.com", vcard.Set{XML: "<vCard xmlns='vcard-temp'><FN>Juliet</FN>" + photo + "</vCard>"}); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []any{
			room.Join{Account: "romeo@example.com", Nick: "Romeo", Create: true},
			room.SetVCard{By: "romeo@example.com", XML: "<vCard xmlns='vcard-temp'><FN>The hall</FN>" + photo + "</vCard>"},
		} {
			if _, _, err := rms.Do(ctx, hall, func(room.State) any { return cmd }); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, _, err := vcards.VCard(ctx, "juliet@example.com")
	if err != nil {
		t.Fatal(err)
	}
	r, err := rms.Get(ctx, hall)
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

// An account's vCard and a room's are in their streams: `annals rebuild`
// replays them (the rooms read model's version of the room follows the
// RoomVCardSet too), and what the log folds to afterwards is what it was,
// avatar hashes included; two rebuilds give the same read models.
func TestVCardRebuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	seed(t, dir, "juliet@example.com", "romeo@example.com")
	before, hall := vcardStates(t, dir, true)
	if a, _ := before.Card.Avatar(); a != "b2bbe763c7e1828c750d53f78550709a6fea19be" || len(hall.VCard.PhotoHashes) != 1 {
		t.Fatalf("set: %+v, room %+v", before, hall.VCard)
	}
	out, errOut, code := annals(t, "rebuild", "--data", dir)
	if code != 0 || !strings.Contains(out, "rooms/v1: replayed") {
		t.Fatalf("rebuild: code %d\n%s%s", code, out, errOut)
	}
	db := filepath.Join(dir, "annals.db")
	first := dumpReadModels(t, db)
	if !strings.Contains(first, "hall@conference.example.com") {
		t.Fatalf("the rebuilt rooms read model lacks the hall:\n%s", first)
	}
	if _, _, code := annals(t, "rebuild", "--data", dir); code != 0 {
		t.Fatalf("second rebuild: code %d", code)
	}
	if again := dumpReadModels(t, db); again != first {
		t.Fatalf("two rebuilds differ:\n%s\n%s", first, again)
	}
	after, hallAfter := vcardStates(t, dir, false)
	if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(hallAfter.VCard, hall.VCard) || hallAfter.Version != hall.Version {
		t.Fatalf("after the rebuild: %+v (was %+v), room %+v v%d (was %+v v%d)", after, before, hallAfter.VCard, hallAfter.Version, hall.VCard, hall.Version)
	}
	// The read model's version of the room is the stream's: it saw the vCard.
	if v := roomVersion(t, db, "hall@conference.example.com"); v != hall.Version {
		t.Fatalf("the rooms read model has the hall at version %d, its stream at %d", v, hall.Version)
	}
}

// roomVersion is the version the rooms read model has of room.
func roomVersion(t *testing.T, path, r string) uint64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	if err := db.QueryRow(`SELECT version FROM rooms WHERE jid = ?`, r).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
