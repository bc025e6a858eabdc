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

// The read model's version of a room is its stream's (the schema says
// so): every room event moves it on, also those whose state is kept
// elsewhere (a room's vCard in the room's state, a retraction's tombstone
// in the archive). Given a room created and joined, when one more event
// is applied, then the room is at that event's version.
func TestVersionFollowsEveryRoomEvent(t *testing.T) {
	t.Parallel()
	const hall = "hall@conference.example.com"
	occ := room.Occupant{Account: "romeo@example.com", Nick: "Romeo", Role: room.Moderator}
	cases := []struct {
		typ  event.Type
		data any
	}{
		{room.TypeConfigured, room.Configured{Config: room.Config{Name: "Hall"}}},
		{room.TypeAffiliationSet, room.AffiliationSet{JID: "juliet@example.com", Affiliation: room.Member}},
		{room.TypeJoined, room.Joined{Occupant: occ}},
		{room.TypeLeft, room.Left{Account: occ.Account, Cause: "idle"}},
		{room.TypeNickChanged, room.NickChanged{Account: occ.Account, Nick: "Montague"}},
		{room.TypePresenceChanged, room.PresenceChanged{Account: occ.Account, Show: "xa"}},
		{room.TypeRoleSet, room.RoleSet{Account: occ.Account, Role: room.Participant}},
		{room.TypeSubjectSet, room.SubjectSet{Subject: "Verona"}},
		{room.TypeMessagePosted, room.MessagePosted{Account: occ.Account, Nick: occ.Nick, ID: "m1",
			Stanza: "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>", WellFormed: true}},
		{room.TypeVCardSet, room.VCardSet{By: occ.Account}},
		{room.TypeMessageRetracted, room.MessageRetracted{ID: "m1", Author: occ.Account, By: occ.Account, Notice: "r1"}},
	}
	ctx := context.Background()
	ids := event.NewIDs()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	envelope := func(typ event.Type, version uint64, data any) event.Envelope {
		t.Helper()
		e, err := event.New(ids, at, typ, room.Schema, "test", data)
		if err != nil {
			t.Fatal(err)
		}
		e.Stream, e.Version = room.Stream(hall), version
		return e
	}
	for _, c := range cases {
		t.Run(string(c.typ), func(t *testing.T) {
			t.Parallel()
			db, err := sqlite.OpenDB(filepath.Join(t.TempDir(), "rooms.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			p := rooms.Projection{}
			if _, err := db.ExecContext(ctx, p.Schema()); err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			given := []event.Envelope{envelope(room.TypeCreated, 1, room.Created{Owner: occ.Account})}
			if c.typ != room.TypeJoined {
				given = append(given, envelope(room.TypeJoined, 0, room.Joined{Occupant: occ}))
			}
			for i := range given {
				given[i].Version = uint64(i + 1)
			}
			for _, e := range append(given, envelope(c.typ, uint64(len(given)+1), c.data)) {
				if err := p.Apply(ctx, tx, e); err != nil {
					t.Fatalf("%s: %v", e.Type, err)
				}
			}
			var v uint64
			if err := tx.QueryRowContext(ctx, `SELECT version FROM rooms WHERE jid = ?`, hall).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if want := uint64(len(given) + 1); v != want {
				t.Fatalf("after %s the room is at version %d, its stream at %d", c.typ, v, want)
			}
		})
	}
}
