package archive_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/account"
	domain "annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	"annals.im/annals/projections/archive"
)

type fixture struct {
	store  *sqlite.Store
	db     *sql.DB
	runner *projections.Runner
	reader *archive.Reader
	ids    *event.IDs
	t0     time.Time
	n      int
}

func open(t testing.TB) *fixture { return openWith(t, sqlite.DurabilityFull) }

func openWith(t testing.TB, d sqlite.Durability) *fixture {
	return openModel(t, d, archive.Projection{})
}

// openModel opens a store whose archive read model is p.
func openModel(t testing.TB, d sqlite.Durability, p archive.Projection) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlite.Options{Durability: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runner, err := projections.NewRunner(ctx, db, nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, db: db, runner: runner, reader: p.Reader(db, store.Unsynced), ids: event.NewIDs(),
		t0: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
}

func (f *fixture) inline(t testing.TB) {
	ip, err := f.runner.Inline("archive")
	if err != nil {
		t.Fatal(err)
	}
	f.store.SetInline(ip)
}

// send records a message from (full JID) to; it returns the data stored.
func (f *fixture) send(t *testing.T, from, to, id string, offline bool) domain.MessageSent {
	t.Helper()
	f.n++
	c := domain.Send{From: jid.MustParse(from), To: jid.MustParse(to), Kind: "chat", MessageID: id, Session: "s",
		Stanza: fmt.Sprintf("<message id='%s'><body>%d</body></message>", id, f.n), ArchiveSender: true, ArchiveRecipient: true, Offline: offline}
	evs, err := domain.Decide(c, f.ids, f.t0.Add(time.Duration(f.n)*time.Second), "test")
	if err != nil {
		t.Fatal(err)
	}
	stream := domain.Stream(c.From.Bare().String(), c.To.Bare().String())
	if _, err := f.store.Append(context.Background(), stream, eventstore.Any, evs...); err != nil {
		t.Fatal(err)
	}
	var d domain.MessageSent
	evs[0].Decode(domain.Schema, &d)
	return d
}

func ids(p domain.Page) []string {
	out := []string{}
	for _, e := range p.Entries {
		out = append(out, e.ID)
	}
	return out
}

func TestQueries(t *testing.T) {
	f := open(t)
	ctx := context.Background()
	// Events before the read model goes inline are caught up inside the
	// first batch after it.
	var sent []domain.MessageSent
	sent = append(sent, f.send(t, "romeo@x/desk", "juliet@x", "m0", false))
	f.inline(t)
	for i := 1; i < 120; i++ {
		from, to := "romeo@x/desk", "juliet@x"
		if i%3 == 0 {
			from, to = "juliet@x/balcony", "romeo@x/desk"
		}
		sent = append(sent, f.send(t, from, to, fmt.Sprintf("m%d", i), false))
	}
	for i := range 200 {
		f.send(t, "romeo@x/desk", "nurse@x", fmt.Sprintf("n%d", i), false)
	}
	f.send(t, "romeo@x/desk", "romeo@x", "self", false)

	// Romeo's archive IDs, in order, for the conversation with Juliet.
	var romeo []string
	for _, d := range sent {
		if d.From == "romeo@x/desk" {
			romeo = append(romeo, d.SenderID)
		} else {
			romeo = append(romeo, d.RecipientID)
		}
	}
	tests := []struct {
		name     string
		q        domain.Query
		want     []string
		complete bool
		err      error
	}{
		{"first page", domain.Query{With: "juliet@x", Max: 10}, romeo[:10], false, nil},
		{"last page", domain.Query{With: "juliet@x", Max: 10, Last: true}, romeo[110:], false, nil},
		{"last page flipped", domain.Query{With: "juliet@x", Max: 3, Last: true, Flip: true}, []string{romeo[119], romeo[118], romeo[117]}, false, nil},
		{"after-id to the end", domain.Query{With: "juliet@x", AfterID: romeo[115]}, romeo[116:], true, nil},
		{"RSM after", domain.Query{With: "juliet@x", RSMAfter: romeo[100], Max: 5}, romeo[101:106], false, nil},
		{"RSM before", domain.Query{With: "juliet@x", RSMBefore: romeo[5], Last: true}, romeo[:5], true, nil},
		{"between ids", domain.Query{AfterID: romeo[10], BeforeID: romeo[14]}, romeo[11:14], true, nil},
		{"ids", domain.Query{IDs: []string{romeo[7], "s:m1"}}, []string{"s:m1", romeo[7]}, true, nil},
		{"full JID with", domain.Query{With: "juliet@x/balcony", Max: 2}, []string{romeo[3], romeo[6]}, false, nil},
		{"start and end", domain.Query{With: "juliet@x", Start: f.t0.Add(3 * time.Second), End: f.t0.Add(5 * time.Second)}, romeo[2:5], true, nil},
		{"self", domain.Query{With: "romeo@x"}, []string{"s:self"}, true, nil},
		{"max clamped", domain.Query{Max: 100000}, nil, false, nil},
		{"unknown after-id", domain.Query{AfterID: "nope"}, nil, false, domain.ErrItemNotFound},
		{"unknown ids", domain.Query{IDs: []string{"s:m1", "nope"}}, nil, false, domain.ErrItemNotFound},
		{"juliet's id is not romeo's", domain.Query{AfterID: sent[0].RecipientID}, nil, false, domain.ErrItemNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.reader.Query(ctx, "romeo@x", tt.q)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if tt.want == nil {
				if len(p.Entries) != domain.MaxPage {
					t.Fatalf("%d entries, want %d", len(p.Entries), domain.MaxPage)
				}
				return
			}
			if got := ids(p); !reflect.DeepEqual(got, tt.want) || p.Complete != tt.complete {
				t.Fatalf("got %v complete %v\nwant %v complete %v", got, p.Complete, tt.want, tt.complete)
			}
		})
	}
	// Juliet's archive holds each message of the conversation once, under her own IDs.
	p, err := f.reader.Query(ctx, "juliet@x", domain.Query{Max: 250})
	if err != nil || len(p.Entries) != 120 || !p.Complete {
		t.Fatalf("juliet: %d entries complete %v err %v", len(p.Entries), p.Complete, err)
	}
	first, last, ok, err := f.reader.Bounds(ctx, "romeo@x")
	if err != nil || !ok || first.ID != "s:m0" || last.ID != "s:self" {
		t.Fatalf("bounds %v %v %v %v", first.ID, last.ID, ok, err)
	}
	if _, _, ok, err := f.reader.Bounds(ctx, "nobody@x"); ok || err != nil {
		t.Fatalf("empty archive bounds: %v %v", ok, err)
	}

	// Replaying the log rebuilds the same archive.
	before := dump(t, f)
	if _, err := f.runner.Rebuild(ctx, f.store, "archive"); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, f); !reflect.DeepEqual(before, after) {
		t.Fatalf("rebuild differs: %d rows before, %d after", len(before), len(after))
	}
}

func dump(t *testing.T, f *fixture) []domain.Entry {
	var all []domain.Entry
	for _, acct := range []string{"romeo@x", "juliet@x", "nurse@x", "hall@conference.x"} {
		q := domain.Query{Max: domain.MaxPage, Groupchat: true}
		for {
			p, err := f.reader.Query(context.Background(), acct, q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, p.Entries...)
			if p.Complete {
				break
			}
			q.RSMAfter = p.Entries[len(p.Entries)-1].ID
		}
	}
	return all
}

// Timestamps never go backwards within an archive, even when the clock did.
func TestClockStepsBack(t *testing.T) {
	f := open(t)
	f.inline(t)
	f.send(t, "romeo@x/desk", "juliet@x", "late", false)
	f.t0 = f.t0.Add(-time.Hour)
	f.send(t, "romeo@x/desk", "juliet@x", "early", false)
	p, err := f.reader.Query(context.Background(), "romeo@x", domain.Query{})
	if err != nil || len(p.Entries) != 2 || p.Entries[0].ID != "s:late" || p.Entries[1].At.Before(p.Entries[0].At) {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestOfflineAndDeletion(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	a := f.send(t, "romeo@x/desk", "juliet@x", "o1", true)
	b := f.send(t, "romeo@x/desk", "juliet@x", "o2", true)
	waiting, err := f.reader.Offline(ctx, "juliet@x", 100)
	if err != nil || len(waiting) != 2 || waiting[0].ID != a.RecipientID {
		t.Fatalf("offline: %+v %v", waiting, err)
	}
	if w, _ := f.reader.Offline(ctx, "romeo@x", 100); len(w) != 0 {
		t.Fatalf("the sender has offline messages: %+v", w)
	}
	evs, _ := domain.Delivered(a.RecipientID, f.ids, f.t0, "test")
	if _, err := f.store.Append(ctx, "account-juliet@x", eventstore.Any, evs...); err != nil {
		t.Fatal(err)
	}
	if waiting, _ = f.reader.Offline(ctx, "juliet@x", 100); len(waiting) != 1 || waiting[0].ID != b.RecipientID {
		t.Fatalf("after delivery of the first: %+v", waiting)
	}
	if has, err := f.reader.Has(ctx, "romeo@x", "s:o1"); !has || err != nil {
		t.Fatalf("has: %v %v", has, err)
	}
	del, _ := account.Decide(account.State{Exists: true}, account.Delete{}, f.ids, f.t0, "test")
	if _, err := f.store.Append(ctx, "account-juliet@x", eventstore.Any, del...); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.reader.Query(ctx, "juliet@x", domain.Query{}); len(p.Entries) != 0 {
		t.Fatalf("deleted account still has %d entries", len(p.Entries))
	}
	if p, _ := f.reader.Query(ctx, "romeo@x", domain.Query{}); len(p.Entries) != 2 {
		t.Fatalf("the other party lost its archive: %d entries", len(p.Entries))
	}
}

// A room's message lands once in the room's archive and once in the
// archive of each account in the room at that point of the log; user
// archive queries leave them out unless asked (include-groupchat).
func TestGroupchat(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	const hall = "hall@conference.x"
	do := func(c any) {
		t.Helper()
		st, err := f.roomState(hall)
		if err != nil {
			t.Fatal(err)
		}
		out, err := room.Decide(st, c, f.ids, f.t0, "test")
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if _, err := f.store.Append(ctx, room.Stream(hall), eventstore.Any, out.Events...); err != nil {
			t.Fatal(err)
		}
	}
	post := func(acct, id string) {
		do(room.Post{Account: acct, ID: id, Stanza: "<message type='groupchat' id='" + id + "'/>"})
	}
	do(room.Join{Account: "romeo@x", Nick: "Romeo", Create: true})
	do(room.Join{Account: "juliet@x", Nick: "Juliet"})
	post("romeo@x", "g1")
	do(room.Leave{Account: "juliet@x"})
	post("romeo@x", "g2")
	f.send(t, "romeo@x/desk", "juliet@x", "c1", false)

	count := func(acct string, q domain.Query) []string {
		t.Helper()
		p, err := f.reader.Query(ctx, acct, q)
		if err != nil {
			t.Fatal(err)
		}
		return ids(p)
	}
	if got := count(hall, domain.Query{Groupchat: true}); !reflect.DeepEqual(got, []string{"g1", "g2"}) {
		t.Fatalf("room archive %v", got)
	}
	if got := count("juliet@x", domain.Query{Groupchat: true}); len(got) != 2 || got[0] != "g1" {
		t.Fatalf("juliet (left after g1) has %v", got)
	}
	if got := count("romeo@x", domain.Query{Groupchat: true, With: hall}); !reflect.DeepEqual(got, []string{"g1", "g2"}) {
		t.Fatalf("romeo's room messages %v", got)
	}
	if got := count("romeo@x", domain.Query{}); !reflect.DeepEqual(got, []string{"s:c1"}) {
		t.Fatalf("romeo's archive without groupchat %v", got)
	}
	do(room.Destroy{By: "romeo@x"})
	if got := count(hall, domain.Query{Groupchat: true}); len(got) != 0 {
		t.Fatalf("destroyed room keeps %v", got)
	}
	if got := count("romeo@x", domain.Query{Groupchat: true}); len(got) != 3 {
		t.Fatalf("romeo lost his copies: %v", got)
	}
	before := dump(t, f)
	if _, err := f.runner.Rebuild(ctx, f.store, "archive"); err != nil {
		t.Fatal(err)
	}
	if after := dump(t, f); !reflect.DeepEqual(before, after) {
		t.Fatal("rebuild differs")
	}
}

func (f *fixture) roomState(r string) (room.State, error) {
	st := room.State{JID: r}
	evs, err := f.store.ReadStream(context.Background(), room.Stream(r), 1, 1000)
	if err != nil {
		return st, err
	}
	for _, e := range evs {
		if st, err = room.Evolve(st, e); err != nil {
			return st, err
		}
	}
	return st, nil
}

// A stanza archived before the server refused malformed XML (an event
// without well_formed) is replayed re-serialized, without the content no
// client could parse.
func TestMalformedStoredStanzaIsSalvaged(t *testing.T) {
	f := open(t)
	f.inline(t)
	ctx := context.Background()
	old := domain.MessageSent{From: "romeo@x/a", To: "juliet@x", Kind: "chat",
		Stanza:   "<message xmlns='jabber:client' id='m1'><foo:bar/><body>hi</body></message>",
		SenderID: "s:m1", RecipientID: f.ids.New(f.t0).String()}
	e, err := event.New(f.ids, f.t0, domain.TypeMessageSent, domain.Schema, "test", old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Append(ctx, domain.Stream("romeo@x", "juliet@x"), eventstore.Any, e); err != nil {
		t.Fatal(err)
	}
	for _, acct := range []string{"romeo@x", "juliet@x"} {
		p, err := f.reader.Query(ctx, acct, domain.Query{})
		if err != nil || len(p.Entries) != 1 {
			t.Fatalf("%s: %d entries, %v", acct, len(p.Entries), err)
		}
		if got, want := p.Entries[0].Stanza, "<message xmlns='jabber:client' id='m1'></message>"; got != want {
			t.Fatalf("%s: stored %s, want %s", acct, got, want)
		}
	}
}
