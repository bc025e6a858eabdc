package archive_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/account"
	domain "annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections/archive"
)

// twin is one log kept twice: each event goes to two stores, one whose
// archive copies a room's messages to its occupants (Projection{}) and
// one that keeps stays (Projection{Stays: true}), both inline.
type twin struct {
	t             *testing.T
	copies, stays *fixture
	ids           *event.IDs
	at            time.Time
	n             int
	known         []string    // every archive ID given out, in any archive
	times         []time.Time // every event's time
	still         bool        // events take the time of the one before
	compared      int
}

func newTwin(t *testing.T) *twin {
	w := &twin{t: t, copies: open(t), stays: openModel(t, sqlite.DurabilityFull, archive.Projection{Stays: true}),
		ids: event.NewIDs(), at: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	w.copies.inline(t)
	w.stays.inline(t)
	return w
}

// emit appends an event with data to both stores; they must place it alike.
func (w *twin) emit(stream string, typ event.Type, schema int, data any) {
	w.t.Helper()
	if !w.still {
		w.at = w.at.Add(time.Second)
	}
	e, err := event.New(w.ids, w.at, typ, schema, "test", data)
	if err != nil {
		w.t.Fatal(err)
	}
	w.times = append(w.times, w.at)
	ctx := context.Background()
	a, err := w.copies.store.Append(ctx, stream, eventstore.Any, e)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := w.stays.store.Append(ctx, stream, eventstore.Any, e)
	if err != nil {
		w.t.Fatal(err)
	}
	if a[0].Position != b[0].Position {
		w.t.Fatalf("the twin logs diverged: %v and %v", a[0].Position, b[0].Position)
	}
}

func (w *twin) chat(from, to string, offline bool) string {
	w.n++
	rid := w.ids.New(w.at).String()
	d := domain.MessageSent{From: from, To: to, Kind: "chat", WellFormed: true, Offline: offline,
		Stanza:   fmt.Sprintf("<message xmlns='jabber:client' id='c%d'><body>chat %d</body></message>", w.n, w.n),
		SenderID: fmt.Sprintf("s:c%d", w.n), RecipientID: rid}
	w.known = append(w.known, d.SenderID, rid)
	w.emit(domain.Stream(bareOf(from), bareOf(to)), domain.TypeMessageSent, domain.Schema, d)
	return rid
}

func (w *twin) join(r, acct, nick string) {
	w.emit(room.Stream(r), room.TypeJoined, room.Schema, room.Joined{Occupant: room.Occupant{Account: acct, Nick: nick, Role: room.Participant}})
}

func (w *twin) leave(r, acct string) {
	w.emit(room.Stream(r), room.TypeLeft, room.Schema, room.Left{Account: acct, Cause: "leave"})
}

// post posts n messages to room r as nick; long ones are a few kilobytes.
func (w *twin) post(r, acct, nick string, n int, long bool) {
	for range n {
		w.n++
		body := fmt.Sprint("groupchat ", w.n)
		if long {
			body = strings.Repeat("long ", 400)
		}
		id := w.ids.New(w.at).String()
		w.known = append(w.known, id)
		w.emit(room.Stream(r), room.TypeMessagePosted, room.Schema, room.MessagePosted{Account: acct, Nick: nick, ID: id, WellFormed: true,
			Stanza: fmt.Sprintf("<message xmlns='jabber:client' type='groupchat' from='%s/%s' id='g%d'><body>%s</body></message>", r, nick, w.n, body)})
	}
}

func (w *twin) destroy(r string) {
	w.emit(room.Stream(r), room.TypeDestroyed, room.Schema, room.Destroyed{Reason: "test"})
}

func (w *twin) del(acct string) {
	w.emit(account.StreamOf(acct), account.TypeDeleted, account.Schema, account.Deleted{Reason: "test"})
}

func (w *twin) delivered(acct, through string) {
	w.emit(account.StreamOf(acct), domain.TypeOfflineDelivered, domain.Schema, domain.OfflineDelivered{Through: through})
}

func bareOf(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

const (
	hall  = "hall@conference.x"
	crypt = "crypt@conference.x"
	vault = "vault@conference.x"
)

var twinAccounts = []string{"romeo@x", "juliet@x", "nurse@x", "tybalt@x", hall, crypt, vault, "nobody@x"}

// queries are the questions asked of every archive: every form of
// paging, bound and filter, and every archive ID known in either role.
func (w *twin) queries() []domain.Query {
	var qs []domain.Query
	for _, gc := range []bool{false, true} {
		for _, max := range []int{0, 1, 3, 250} {
			for _, last := range []bool{false, true} {
				qs = append(qs, domain.Query{Groupchat: gc, Max: max, Last: last}, domain.Query{Groupchat: gc, Max: max, Last: last, Flip: true})
			}
		}
		for _, with := range []string{hall, crypt, hall + "/Romeo", hall + "/Nobody", "juliet@x", "juliet@x/balcony", "romeo@x", "nurse@x"} {
			qs = append(qs, domain.Query{Groupchat: gc, With: with}, domain.Query{Groupchat: gc, With: with, Last: true, Max: 2})
		}
		for i, t := range w.times {
			if gc {
				qs = append(qs, domain.Query{Groupchat: gc, Start: t, Max: 2}, domain.Query{Groupchat: gc, End: t, Last: true, Max: 2})
			}
			if i%7 == 0 {
				qs = append(qs, domain.Query{Groupchat: gc, Start: t}, domain.Query{Groupchat: gc, End: t, Last: true},
					domain.Query{Groupchat: gc, Start: t.Add(-30 * time.Second), End: t.Add(30 * time.Second), With: hall})
			}
		}
		for _, b := range []int{1, 100, 900, 5000} {
			qs = append(qs, domain.Query{Groupchat: gc, Max: 250, MaxBytes: b}, domain.Query{Groupchat: gc, Max: 250, MaxBytes: b, Last: true})
		}
	}
	for i, id := range w.known {
		other := w.known[(i*7+3)%len(w.known)]
		qs = append(qs,
			domain.Query{Groupchat: true, AfterID: id, Max: 4},
			domain.Query{Groupchat: i%2 == 0, BeforeID: id, Max: 4, Last: true},
			domain.Query{Groupchat: true, IDs: []string{id}},
			domain.Query{Groupchat: true, IDs: []string{other, id}, Flip: true},
			domain.Query{Groupchat: true, RSMAfter: id, Max: 2, With: hall},
			domain.Query{Groupchat: true, RSMBefore: id, Last: true, Max: 2, AfterID: other})
	}
	return qs
}

// compare asks both models every query on every archive and fails on any
// difference in entries (IDs, times, stanzas), completeness or error.
func (w *twin) compare(phase string) {
	w.t.Helper()
	a := w.copies.reader
	fails := 0
	fail := func(format string, args ...any) {
		w.t.Helper()
		if fails++; fails <= 5 {
			w.t.Errorf(phase+": "+format, args...)
		}
	}
	qs := w.queries()
	// The stays reader as it is, and listing an account's rooms one at a
	// time (a page then reads past the first batch of rooms).
	for _, b := range []*archive.Reader{w.stays.reader, archive.WithRoomBatch(w.stays.reader, 1)} {
		w.compareWith(phase, a, b, qs, fail)
	}
	w.compareRows(fail)
}

func (w *twin) compareWith(phase string, a, b *archive.Reader, qs []domain.Query, fail func(string, ...any)) {
	w.t.Helper()
	ctx := context.Background()
	for _, acct := range twinAccounts {
		for _, q := range qs {
			pa, ea := a.Query(ctx, acct, q)
			pb, eb := b.Query(ctx, acct, q)
			w.compared++
			if fmt.Sprint(ea) != fmt.Sprint(eb) || !reflect.DeepEqual(pa, pb) {
				fail("%s %+v:\ncopies %v complete %v err %v\nstays  %v complete %v err %v", acct, q, ids(pa), pa.Complete, ea, ids(pb), pb.Complete, eb)
			}
		}
		// RSM walks, both ways, pages of 3 and of a few hundred bytes.
		for _, last := range []bool{false, true} {
			wa, wb := walk(w.t, a, acct, last), walk(w.t, b, acct, last)
			if !reflect.DeepEqual(wa, wb) {
				fail("%s walk last=%v:\ncopies %v\nstays  %v", acct, last, wa, wb)
			}
		}
		fa, la, oka, ea := a.Bounds(ctx, acct)
		fb, lb, okb, eb := b.Bounds(ctx, acct)
		if fa != fb || la != lb || oka != okb || fmt.Sprint(ea) != fmt.Sprint(eb) {
			fail("%s bounds: copies %v %v %v %v, stays %v %v %v %v", acct, fa.ID, la.ID, oka, ea, fb.ID, lb.ID, okb, eb)
		}
		oa, ea := a.Offline(ctx, acct, 100)
		ob, eb := b.Offline(ctx, acct, 100)
		if !reflect.DeepEqual(oa, ob) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			fail("%s offline: copies %v, stays %v", acct, oa, ob)
		}
		na, _ := a.Offlines(ctx, acct)
		nb, _ := b.Offlines(ctx, acct)
		if na != nb {
			fail("%s offlines: copies %d, stays %d", acct, na, nb)
		}
	}
}

// compareRows checks that the stays model keeps one row per room message
// some archive holds, none copied, none that no archive holds.
func (w *twin) compareRows(fail func(string, ...any)) {
	ctx := context.Background()
	var copied, held, distinct int
	for _, c := range []struct {
		db *sql.DB
		q  string
		n  *int
	}{
		{w.stays.db, `SELECT count(*) FROM archive WHERE groupchat = 1 AND account NOT LIKE '%@conference.x%'`, &copied},
		{w.stays.db, `SELECT count(*) FROM archive WHERE groupchat = 1`, &held},
		{w.copies.db, `SELECT count(DISTINCT id) FROM archive WHERE groupchat = 1`, &distinct},
	} {
		if err := c.db.QueryRowContext(ctx, c.q).Scan(c.n); err != nil {
			w.t.Fatal(err)
		}
	}
	if copied != 0 || held != distinct {
		fail("stays model: %d rows copied to accounts, %d room rows for the %d messages some archive holds", copied, held, distinct)
	}
}

// walk pages through acct's whole archive (groupchat included) with RSM,
// three entries or 700 bytes a page, and returns every page.
func walk(t *testing.T, r *archive.Reader, acct string, last bool) [][]domain.Entry {
	var pages [][]domain.Entry
	edge := ""
	for range 1000 {
		q := domain.Query{Groupchat: true, Max: 3, MaxBytes: 700, Last: last}
		if last {
			q.RSMBefore = edge
		} else {
			q.RSMAfter = edge
		}
		p, err := r.Query(context.Background(), acct, q)
		if err != nil {
			t.Fatalf("%s walk: %v", acct, err)
		}
		pages = append(pages, p.Entries)
		if p.Complete || len(p.Entries) == 0 {
			return pages
		}
		if edge = p.Entries[len(p.Entries)-1].ID; last {
			edge = p.Entries[0].ID
		}
	}
	t.Fatalf("%s walk does not end", acct)
	return nil
}

// entries is acct's whole archive, groupchat included, by ID.
func entries(t *testing.T, r *archive.Reader, acct string) []string {
	var out []string
	for _, p := range walk(t, r, acct, false) {
		for _, e := range p {
			out = append(out, e.ID)
		}
	}
	return out
}

// TestStaysAnswerAsCopies builds one log in phases (1:1 chats and
// offline delivery; rooms joined, left and joined again; a second entry
// without an exit; a room destroyed and made again; accounts deleted in
// and out of rooms) and after each phase asks both archive models every
// query (paging, flip, start/end, with= room, nick, contact, after-id,
// before-id, ids, byte bounds, metadata bounds, offline) on every archive.
// The stays model also keeps one row per room message, and rebuilds to
// the same tables.
func TestStaysAnswerAsCopies(t *testing.T) {
	w := newTwin(t)
	ctx := context.Background()

	// 1: two rooms, chats between the posts, an offline message delivered.
	w.join(hall, "romeo@x", "Romeo")
	w.chat("romeo@x/desk", "juliet@x", false)
	w.join(hall, "juliet@x", "Juliet")
	w.join(crypt, "tybalt@x", "Tybalt")
	w.post(hall, "romeo@x", "Romeo", 3, false)
	w.chat("juliet@x/balcony", "romeo@x/desk", false)
	w.join(crypt, "romeo@x", "Romeo")
	w.post(crypt, "tybalt@x", "Tybalt", 2, true)
	w.post(hall, "juliet@x", "Juliet", 2, false)
	first := w.chat("romeo@x/desk", "nurse@x", true)
	w.chat("juliet@x/balcony", "nurse@x", true)
	w.delivered("nurse@x", first)
	w.join(hall, "nurse@x", "Nurse")
	w.post(hall, "nurse@x", "Nurse", 1, true)
	w.chat("romeo@x/desk", "romeo@x", false)
	// Events of one instant: the stamps tie, log order decides.
	w.still = true
	w.post(crypt, "romeo@x", "Romeo", 1, false)
	w.chat("juliet@x/balcony", "romeo@x/desk", false)
	w.post(hall, "juliet@x", "Juliet", 2, false)
	w.chat("romeo@x/desk", "juliet@x", false)
	w.post(crypt, "tybalt@x", "Tybalt", 1, false)
	// nurse stays in the crypt for one instant, in which the hall has a
	// message too, and the crypt before she comes and after she goes:
	// her crypt rows begin and end at a stamp other rows have.
	w.join(crypt, "nurse@x", "Nurse")
	w.post(hall, "juliet@x", "Juliet", 1, false)
	w.post(crypt, "tybalt@x", "Tybalt", 1, false)
	w.leave(crypt, "nurse@x")
	w.post(crypt, "tybalt@x", "Tybalt", 1, false) // not hers
	w.still = false
	w.compare("joined")

	// 2: juliet leaves and comes back; what was said meanwhile is not hers.
	w.leave(hall, "juliet@x")
	w.post(hall, "romeo@x", "Romeo", 3, false)
	w.chat("juliet@x/balcony", "romeo@x/desk", false)
	absent := w.known[len(w.known)-3]
	w.join(hall, "juliet@x", "Juliet")
	w.join(hall, "juliet@x", "Juliet") // a second session's entry, no exit between
	w.post(hall, "juliet@x", "Juliet", 2, false)
	w.leave(crypt, "nobody@x") // an exit without an entry
	w.leave(hall, "juliet@x")
	w.join(hall, "juliet@x", "Juliet")
	w.post(hall, "romeo@x", "Romeo", 2, false)
	w.compare("rejoined")
	for _, m := range []*fixture{w.copies, w.stays} {
		if got := entries(t, m.reader, "juliet@x"); strings.Contains(strings.Join(got, " "), absent) {
			t.Fatalf("juliet has %s, posted while she was out: %v", absent, got)
		}
	}

	// 3: the hall is destroyed with its occupants in it, then made again.
	w.destroy(hall)
	w.chat("nurse@x/kitchen", "juliet@x", false)
	w.join(hall, "romeo@x", "Romeo")
	w.post(hall, "romeo@x", "Romeo", 2, false)
	w.join(hall, "tybalt@x", "Tybalt")
	w.post(hall, "tybalt@x", "Tybalt", 1, false)
	w.compare("destroyed and made again")

	// 4: nurse is deleted while in a room (her exit comes after: serve's
	// sweep) and registers again; tybalt, the last to hold the old hall's
	// rows with romeo, is deleted; the crypt goes with no one left in it.
	w.join(crypt, "nurse@x", "Nurse")
	w.del("nurse@x")
	w.post(crypt, "romeo@x", "Romeo", 2, false)
	w.leave(crypt, "nurse@x")
	w.post(crypt, "romeo@x", "Romeo", 1, false)
	w.chat("romeo@x/desk", "nurse@x", false)
	w.join(crypt, "nurse@x", "Nurse")
	w.post(crypt, "tybalt@x", "Tybalt", 1, false)
	w.del("tybalt@x")
	w.compare("deleted")
	// The vault: tybalt (registered again) alone, then nurse too;
	// tybalt's part is held by no one once he is deleted and the vault
	// is destroyed, nurse's once she is deleted too.
	w.join(vault, "tybalt@x", "Tybalt")
	w.post(vault, "tybalt@x", "Tybalt", 2, false)
	w.join(vault, "nurse@x", "Nurse")
	w.post(vault, "tybalt@x", "Tybalt", 1, false)
	w.leave(vault, "tybalt@x")
	w.del("tybalt@x")
	w.compare("vault")
	w.destroy(vault)
	w.compare("vault destroyed")
	w.del("nurse@x")
	w.compare("vault's last holder deleted")
	w.leave(crypt, "romeo@x")
	w.leave(crypt, "nurse@x")
	w.leave(crypt, "tybalt@x")
	w.destroy(crypt)
	w.compare("all gone")
	if w.compared < 20000 {
		t.Fatalf("only %d queries compared", w.compared)
	}

	// Replaying the log gives the same tables.
	before := tables(t, w.stays.db)
	if _, err := w.stays.runner.Rebuild(ctx, w.stays.store, "archive"); err != nil {
		t.Fatal(err)
	}
	if after := tables(t, w.stays.db); after != before {
		t.Fatalf("rebuild differs:\nlive:\n%s\nrebuilt:\n%s", before, after)
	}
}

// tables prints the archive's tables, rows in a total order.
func tables(t *testing.T, db *sql.DB) string {
	var b strings.Builder
	for _, table := range (archive.Projection{}).Tables() {
		rows, err := db.Query(`SELECT * FROM "` + table + `" LIMIT 0`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		rows.Close()
		order := "1"
		for i := 2; i <= len(cols); i++ {
			order += fmt.Sprintf(", %d", i)
		}
		if rows, err = db.Query(`SELECT * FROM "` + table + `" ORDER BY ` + order); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s %v\n", table, cols)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}

// Where the event times go back in log order (a clock stepped back, or
// two appends decided in one order and committed in the other), the stays
// model stamps a row with the latest stamp of the whole archive, the
// copies model with the latest of that account's: the stamps differ, and
// neither goes back within an account's archive.
func TestStaysClock(t *testing.T) {
	w := newTwin(t)
	ctx := context.Background()
	w.join(hall, "romeo@x", "Romeo")
	w.post(hall, "romeo@x", "Romeo", 1, false)
	w.at = w.at.Add(-time.Hour)
	w.chat("juliet@x/balcony", "nurse@x", false)
	w.chat("romeo@x/desk", "juliet@x", false)
	latest := w.times[1]
	stamps := func(r *archive.Reader, acct string) []time.Time {
		p, err := r.Query(ctx, acct, domain.Query{Groupchat: true})
		if err != nil {
			t.Fatal(err)
		}
		var out []time.Time
		for _, e := range p.Entries {
			out = append(out, e.At)
		}
		return out
	}
	if got, want := stamps(w.copies.reader, "juliet@x"), []time.Time{w.times[2], w.times[3]}; !reflect.DeepEqual(got, want) {
		t.Fatalf("copies: juliet's stamps %v, want %v", got, want)
	}
	if got, want := stamps(w.stays.reader, "juliet@x"), []time.Time{latest, latest}; !reflect.DeepEqual(got, want) {
		t.Fatalf("stays: juliet's stamps %v, want %v", got, want)
	}
	for _, m := range []*fixture{w.copies, w.stays} {
		if got := stamps(m.reader, "romeo@x"); len(got) != 2 || !got[0].Equal(latest) || !got[1].Equal(latest) {
			t.Fatalf("romeo's stamps %v, want %v twice", got, latest)
		}
	}
}
