package mirrors_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	"annals.im/annals/projections/mirrors"
)

const room = "hall@conference.capulet.example"

type fixture struct {
	store  *sqlite.Store
	db     *sql.DB
	runner *projections.Runner
	ids    *event.IDs
	st     mirror.State
}

func open(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "m.db"), sqlite.Options{Durability: sqlite.DurabilityFull})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runner, err := projections.NewRunner(ctx, db, nil, mirrors.Projection{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, db: db, runner: runner, ids: event.NewIDs()}
}

// do decides c on the replica and appends its events.
func (f *fixture) do(t *testing.T, c any) {
	t.Helper()
	evs, err := mirror.Decide(f.st, c, f.ids, time.Now(), "test")
	if err != nil {
		t.Fatalf("%T: %v", c, err)
	}
	evs, err = f.store.Append(context.Background(), mirror.Stream(room), eventstore.Any, evs...)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if f.st, err = mirror.Evolve(f.st, e); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) catchUp(t *testing.T) {
	t.Helper()
	if _, err := f.runner.CatchUp(context.Background(), f.store); err != nil {
		t.Fatal(err)
	}
}

func msg(seq uint64, body, accepts string) mirror.Apply {
	return mirror.Apply{Applied: mirror.Applied{Seq: seq, Kind: mirror.Message, Nick: "Romeo", Accepts: accepts,
		Stanza: "<message type='groupchat'><body>" + body + "</body></message>"}}
}

func post(id, body string) mirror.Post {
	return mirror.Post{Posted: mirror.Posted{LocalID: id, Account: "romeo@montague.example", Nick: "Romeo",
		Stanza: "<message type='groupchat'><body>" + body + "</body></message>"}}
}

func bodies(ms []mirrors.Message) string {
	var out []string
	for _, m := range ms {
		b := m.Stanza[strings.Index(m.Stanza, "<body>")+6 : strings.Index(m.Stanza, "</body>")]
		out = append(out, fmt.Sprintf("%s@%d", b, m.Seq))
	}
	return strings.Join(out, " ")
}

// The mirror's room history is in the master's order, a local post
// taking its place once the master accepts it, the pending ones last; the
// roster and the subject follow the master.
func TestHistoryAndRoster(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Roster, Occupants: []mirror.Occupant{
		{Nick: "Juliet", JID: "juliet@capulet.example", Affiliation: "owner", Role: "moderator"}}}})
	f.do(t, msg(2, "first", ""))
	f.do(t, post("l1", "partitioned-one"))
	f.do(t, post("l2", "partitioned-two"))
	f.do(t, msg(3, "meanwhile", ""))
	f.do(t, msg(4, "partitioned-two", "l2")) // the master ordered the second post first
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 5, Kind: mirror.Presence, Occupant: &mirror.Occupant{Nick: "Romeo", Role: "participant"}}})
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 6, Kind: mirror.Subject, Subject: "Verona"}})
	f.catchUp(t)
	h, err := mirrors.History(ctx, f.db, room, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := bodies(h), "first@2 meanwhile@3 partitioned-two@4 partitioned-one@0"; got != want {
		t.Fatalf("history %s, want %s", got, want)
	}
	if h, _ := mirrors.History(ctx, f.db, room, 2); bodies(h) != "partitioned-two@4 partitioned-one@0" {
		t.Fatalf("the last two: %s", bodies(h))
	}
	var seq, pending int
	var subject string
	if err := f.db.QueryRow(`SELECT seq, subject, pending FROM mirror_rooms WHERE room = ?`, room).Scan(&seq, &subject, &pending); err != nil ||
		seq != 6 || subject != "Verona" || pending != 1 {
		t.Fatalf("room row: seq %d subject %q pending %d %v", seq, subject, pending, err)
	}
	var n int
	f.db.QueryRow(`SELECT count(*) FROM mirror_occupants WHERE room = ?`, room).Scan(&n)
	if n != 2 {
		t.Fatalf("%d occupants, want Juliet and Romeo", n)
	}
}

// Rebuilding the read model from the log gives the same tables.
func TestRebuildReproduces(t *testing.T) {
	f := open(t)
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Juliet"}, {Nick: "Nurse"}}}})
	for i := range 20 {
		f.do(t, post(fmt.Sprintf("l%d", i), fmt.Sprintf("p%d", i)))
	}
	f.do(t, mirror.Link{Linked: mirror.Linked{Up: false, Why: "test"}})
	for i := range 30 {
		if i == 10 {
			f.do(t, mirror.Link{Linked: mirror.Linked{Up: true}})
		}
		accepts := ""
		if i%2 == 0 && i/2 < 20 {
			accepts = fmt.Sprintf("l%d", i/2)
		}
		f.do(t, msg(uint64(i+2), fmt.Sprintf("m%d", i), accepts))
	}
	f.catchUp(t)
	before := dump(t, f.db)
	if _, err := f.runner.Rebuild(context.Background(), f.store, mirrors.Name); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, f.db); !reflect.DeepEqual(before, after) {
		t.Fatalf("tables after the rebuild differ:\n%v\n%v", before, after)
	}
}

func dump(t *testing.T, db *sql.DB) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT room, seq, subject, pending, version, link_down, link_at, heard_at FROM mirror_rooms ORDER BY room`,
		`SELECT room, nick, jid, affiliation, role, show, status FROM mirror_occupants ORDER BY room, nick`,
		`SELECT room, version, coalesce(seq, -1), local_id, account, stanza FROM mirror_messages ORDER BY room, version`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals...))
		}
		rows.Close()
	}
	if len(out) < 5 {
		t.Fatalf("only %d rows dumped", len(out))
	}
	return out
}

// Rebuilding one room's mirror from its stream gives the same rows, and
// leaves the other rooms' alone.
func TestRebuildRoom(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Juliet"}}}})
	f.do(t, post("l1", "pending"))
	f.do(t, msg(2, "one", ""))
	f.do(t, msg(3, "pending", "l1"))
	other := "crypt@conference.capulet.example"
	evs, _ := mirror.Decide(mirror.State{}, msg(1, "elsewhere", ""), f.ids, time.Now(), "test")
	if _, err := f.store.Append(ctx, mirror.Stream(other), eventstore.Any, evs...); err != nil {
		t.Fatal(err)
	}
	f.catchUp(t)
	before := dump(t, f.db)
	stream, err := f.store.ReadStream(ctx, mirror.Stream(room), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := mirrors.RebuildRoom(ctx, f.db, room, stream); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, f.db); !reflect.DeepEqual(before, after) {
		t.Fatalf("the room's rows after its rebuild differ:\n%v\n%v", before, after)
	}
	list, err := mirrors.List(ctx, f.db)
	if err != nil || len(list) != 2 || list[1].Room != room || list[1].Seq != 3 || list[1].Pending != 0 || list[1].Messages != 2 || list[1].Occupants != 1 {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := mirrors.RebuildRoom(ctx, f.db, other, stream); err == nil {
		t.Fatal("a room rebuilt from another's events")
	}
}

// The link's state and when the master last spoke: what annals mirror
// list shows an operator.
func TestLinkState(t *testing.T) {
	f := open(t)
	list := func() mirrors.Summary {
		t.Helper()
		f.catchUp(t)
		l, err := mirrors.List(context.Background(), f.db)
		if err != nil || len(l) != 1 {
			t.Fatalf("list %v %v", l, err)
		}
		return l[0]
	}
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Roster}})
	s := list()
	if s.Down || !s.LinkAt.IsZero() || s.Heard.IsZero() {
		t.Fatalf("after a roster: %+v", s)
	}
	heard := s.Heard
	f.do(t, mirror.Link{Linked: mirror.Linked{Up: false, Why: "test"}})
	if s = list(); !s.Down || s.LinkAt.IsZero() || s.Heard != heard {
		t.Fatalf("link down: %+v", s)
	}
	f.do(t, mirror.Link{Linked: mirror.Linked{Up: true}})
	if s = list(); s.Down || s.LinkAt.IsZero() {
		t.Fatalf("link back: %+v", s)
	}
}

// A refetch drops what the master said and keeps the posts it has not
// accepted; what the master says again is kept as before.
func TestRefetch(t *testing.T) {
	f := open(t)
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Juliet"}}}})
	f.do(t, msg(2, "m2", ""))
	f.do(t, post("l1", "mine"))
	f.do(t, post("l2", "refused"))
	f.do(t, mirror.Refuse{Refused: mirror.Refused{LocalID: "l2", Condition: "forbidden"}})
	f.do(t, mirror.Refetch{Reset: mirror.Reset{Why: "test"}})
	f.catchUp(t)
	h, err := mirrors.History(context.Background(), f.db, room, 10)
	if err != nil || len(h) != 1 || h[0].LocalID != "l1" || h[0].Seq != 0 {
		t.Fatalf("after a refetch: %+v %v", h, err)
	}
	l, _ := mirrors.List(context.Background(), f.db)
	if len(l) != 1 || l[0].Seq != 0 || l[0].Occupants != 0 || l[0].Pending != 1 {
		t.Fatalf("list %+v", l)
	}
	f.do(t, mirror.Apply{Applied: mirror.Applied{Seq: 1, Kind: mirror.Presence, Occupant: &mirror.Occupant{Nick: "Juliet"}}})
	f.do(t, msg(2, "m2", ""))
	f.catchUp(t)
	if h, _ = mirrors.History(context.Background(), f.db, room, 10); len(h) != 2 || h[0].Seq != 2 {
		t.Fatalf("fetched again: %+v", h)
	}
}
