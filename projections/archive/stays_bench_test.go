package archive_test

// The two archive models side by side, in one run, on one machine:
//
//	BenchmarkStaysWrite  archive rows and writer time per room message, 20
//	                     and 50 occupants: copies (Projection{}), stays
//	                     (Projection{Stays: true}), and the store alone
//	BenchmarkStaysRead   MAM latency (p50, p99) on an account whose archive
//	                     holds 20,000 entries, 1:1 and 5 rooms of 20
//
// Each figure comes from fixed work, so run them once:
//
//	CGO_ENABLED=1 go test -run '^$' -bench Stays -benchtime 1x ./projections/archive/

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"testing"
	"text/tabwriter"
	"time"

	domain "annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections/archive"
)

type model struct {
	name   string
	p      archive.Projection
	inline bool // false: the store alone, no archive kept
}

var models = []model{{"copies", archive.Projection{}, true}, {"stays", archive.Projection{Stays: true}, true}, {"store", archive.Projection{}, false}}

const (
	writeRounds = 3    // fresh stores per model, taken in turns; the median counts
	writeWarm   = 500  // room messages before the clock starts
	writePosts  = 2000 // room messages timed
)

// poster appends events one append each, as serve does for a room message.
type poster struct {
	f   *fixture
	ids *event.IDs
	at  time.Time
	n   int
}

func (p *poster) event(tb testing.TB, typ event.Type, data any) event.Envelope {
	p.at = p.at.Add(time.Millisecond)
	e, err := event.New(p.ids, p.at, typ, room.Schema, "bench", data)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func (p *poster) append(tb testing.TB, stream string, evs ...event.Envelope) {
	if _, err := p.f.store.Append(context.Background(), stream, eventstore.Any, evs...); err != nil {
		tb.Fatal(err)
	}
}

func (p *poster) post(tb testing.TB, r, acct string) event.Envelope {
	p.n++
	return p.event(tb, room.TypeMessagePosted, room.MessagePosted{Account: acct, Nick: acct[:4], ID: p.ids.New(p.at).String(), WellFormed: true,
		Stanza: fmt.Sprintf("<message xmlns='jabber:client' type='groupchat' from='%s/%s' id='m%d'><body>message %d: did the build go green today?</body></message>", r, acct[:4], p.n, p.n)})
}

// BenchmarkStaysWrite times room messages appended one per append (each
// its own write transaction) and 16 per append (as the store's writer
// batches concurrent appends into one transaction under load).
func BenchmarkStaysWrite(b *testing.B) {
	type figure struct {
		perMsg time.Duration
		rows   float64
	}
	got := map[string]figure{}
	key := func(batch, occupants int, m string) string { return fmt.Sprint(batch, "/", occupants, "/", m) }
	for _, batch := range []int{1, 16} {
		for _, occupants := range []int{20, 50} {
			times := map[string][]time.Duration{}
			rows := map[string]float64{}
			for range writeRounds {
				for _, m := range models {
					fig := writeRun(b, m, occupants, batch)
					times[m.name] = append(times[m.name], fig.perMsg)
					rows[m.name] = fig.rows
				}
			}
			for _, m := range models {
				slices.Sort(times[m.name])
				fig := figure{times[m.name][writeRounds/2], rows[m.name]}
				got[key(batch, occupants, m.name)] = fig
				b.Run(fmt.Sprintf("batch-%d/%d-occupants/%s", batch, occupants, m.name), func(b *testing.B) {
					b.ReportMetric(float64(fig.perMsg.Microseconds()), "µs/msg")
					b.ReportMetric(fig.rows, "rows/msg")
				})
			}
		}
	}
	fmt.Printf("\nroom messages appended (median of %d rounds of %d after %d; durability normal)\n", writeRounds, writePosts, writeWarm)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  per append\toccupants\tmodel\trows/msg\tµs/msg\tarchive µs/msg (over the store alone)")
	for _, batch := range []int{1, 16} {
		for _, occupants := range []int{20, 50} {
			alone := got[key(batch, occupants, "store")].perMsg
			for _, m := range models[:2] {
				fig := got[key(batch, occupants, m.name)]
				fmt.Fprintf(tw, "  %d\t%d\t%s\t%.2f\t%.1f\t%.1f\n", batch, occupants, m.name, fig.rows, us(fig.perMsg), us(fig.perMsg-alone))
			}
			fmt.Fprintf(tw, "  %d\t%d\tstore alone\t-\t%.1f\t-\n", batch, occupants, us(alone))
			c, s := got[key(batch, occupants, "copies")].perMsg, got[key(batch, occupants, "stays")].perMsg
			fmt.Fprintf(tw, "  %d\t%d\tcopies/stays\t\t%.2fx\t%.2fx\n", batch, occupants, float64(c)/float64(s), float64(c-alone)/float64(max(s-alone, 1)))
		}
	}
	tw.Flush()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// writeRun appends writePosts room messages, batch per append, to a room
// of occupants on a fresh store keeping model m.
func writeRun(b *testing.B, m model, occupants, batch int) (fig struct {
	perMsg time.Duration
	rows   float64
}) {
	f := openModel(b, sqlite.DurabilityNormal, m.p)
	if m.inline {
		f.inline(b)
	}
	p := &poster{f: f, ids: event.NewIDs(), at: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	const r = "bench@conference.x"
	for i := range occupants {
		p.append(b, room.Stream(r), p.event(b, room.TypeJoined, room.Joined{Occupant: room.Occupant{Account: fmt.Sprintf("u%03d@x", i), Nick: fmt.Sprint("u", i)}}))
	}
	posts := func(n int) {
		for i := 0; i < n; i += batch {
			evs := make([]event.Envelope, 0, batch)
			for k := range batch {
				evs = append(evs, p.post(b, r, fmt.Sprintf("u%03d@x", (i+k)%occupants)))
			}
			p.append(b, room.Stream(r), evs...)
		}
	}
	posts(writeWarm)
	before := countRows(b, f)
	start := time.Now()
	posts(writePosts)
	fig.perMsg = time.Since(start) / writePosts
	fig.rows = float64(countRows(b, f)-before) / writePosts
	return fig
}

func countRows(tb testing.TB, f *fixture) int {
	var n int
	if err := f.db.QueryRow(`SELECT count(*) FROM archive`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

const (
	readRooms     = 5
	readOccupants = 20
	readChats     = 4000  // 1:1 entries of the account
	readGroupchat = 16000 // room entries of the account
	readRepeats   = 400   // per query and model
)

// appendChunk is some events of one stream, appended at once.
type appendChunk struct {
	stream string
	evs    []event.Envelope
}

// readLog makes me@x's history: first past rooms it was in for 5
// messages each and left, then readChats 1:1 and readGroupchat room
// messages, in chunks of 10 taken in turns; me@x leaves each room after
// every stay room messages there and comes back after one it misses. It
// returns the log and the archive IDs of me@x's entries, in order.
func readLog(tb testing.TB, stay, past int) (log []appendChunk, mine []string) {
	ids := event.NewIDs()
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	ev := func(typ event.Type, schema int, data any) event.Envelope {
		at = at.Add(time.Millisecond)
		e, err := event.New(ids, at, typ, schema, "bench", data)
		if err != nil {
			tb.Fatal(err)
		}
		return e
	}
	n := 0
	post := func(r, nick string) (event.Envelope, string) {
		n++
		id := ids.New(at).String()
		return ev(room.TypeMessagePosted, room.Schema, room.MessagePosted{Account: "u01@x", Nick: nick, ID: id, WellFormed: true,
			Stanza: fmt.Sprintf("<message xmlns='jabber:client' type='groupchat' from='%s/%s' id='m%d'><body>message %d: did the build go green today?</body></message>", r, nick, n, n)}), id
	}
	for i := range past {
		r := fmt.Sprintf("old%d@conference.x", i)
		evs := []event.Envelope{ev(room.TypeJoined, room.Schema, room.Joined{Occupant: room.Occupant{Account: "me@x", Nick: "me"}})}
		for range 5 {
			e, id := post(r, "u01")
			mine = append(mine, id)
			evs = append(evs, e)
		}
		log = append(log, appendChunk{room.Stream(r), append(evs, ev(room.TypeLeft, room.Schema, room.Left{Account: "me@x", Cause: "leave"}))})
	}
	rooms := make([]string, readRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room%d@conference.x", i)
		var evs []event.Envelope
		for o := range readOccupants {
			acct := fmt.Sprintf("u%02d@x", o)
			if o == 0 {
				acct = "me@x"
			}
			evs = append(evs, ev(room.TypeJoined, room.Schema, room.Joined{Occupant: room.Occupant{Account: acct, Nick: acct[:3]}}))
		}
		log = append(log, appendChunk{room.Stream(rooms[i]), evs})
	}
	inRoom := make([]int, readRooms) // messages me@x saw since it came in
	for step := 0; step < (readChats+readGroupchat)/10; step++ {
		if step%5 == 4 {
			c := fmt.Sprintf("c%d@x", (step/5)%10)
			var evs []event.Envelope
			for k := range 10 {
				n++
				from, to := "me@x/phone", c
				if k%2 == 1 {
					from, to = c+"/desk", "me@x"
				}
				rid := ids.New(at).String()
				d := domain.MessageSent{From: from, To: to, Kind: "chat", WellFormed: true, SenderID: fmt.Sprintf("s:%d", n), RecipientID: rid,
					Stanza: fmt.Sprintf("<message xmlns='jabber:client' id='c%d'><body>chat %d: are you coming tonight?</body></message>", n, n)}
				if from == "me@x/phone" {
					mine = append(mine, d.SenderID)
				} else {
					mine = append(mine, rid)
				}
				evs = append(evs, ev(domain.TypeMessageSent, domain.Schema, d))
			}
			log = append(log, appendChunk{domain.Stream("me@x", c), evs})
			continue
		}
		i := step % readRooms
		r := rooms[i]
		var evs []event.Envelope
		for range 10 {
			e, id := post(r, "u01")
			mine = append(mine, id)
			evs = append(evs, e)
			if inRoom[i]++; inRoom[i] == stay {
				inRoom[i] = 0
				missed, _ := post(r, "u02")
				evs = append(evs, ev(room.TypeLeft, room.Schema, room.Left{Account: "me@x", Cause: "leave"}), missed,
					ev(room.TypeJoined, room.Schema, room.Joined{Occupant: room.Occupant{Account: "me@x", Nick: "me"}}))
			}
		}
		log = append(log, appendChunk{room.Stream(r), evs})
	}
	return log, mine
}

// load appends log to a fresh store that keeps model m's archive.
func load(tb testing.TB, m model, log []appendChunk) *fixture {
	f := openModel(tb, sqlite.DurabilityNormal, m.p)
	f.inline(tb)
	for _, c := range log {
		if _, err := f.store.Append(context.Background(), c.stream, eventstore.Any, c.evs...); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func BenchmarkStaysRead(b *testing.B) {
	for _, shape := range []struct{ stay, past int }{{100, 0}, {10, 0}, {100, 200}} {
		stay := shape.stay
		log, mine := readLog(b, stay, shape.past)
		var fs []*fixture
		for _, m := range models[:2] {
			start := time.Now()
			f := load(b, m, log)
			fmt.Printf("%s archive built in %v: %d rows\n", m.name, time.Since(start).Round(time.Millisecond), countRows(b, f))
			fs = append(fs, f)
		}
		mid, late := mine[len(mine)/2], mine[len(mine)-200]
		first := mine[0]
		t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
		qs := []struct {
			name string
			q    domain.Query
		}{
			{"last 50 (1:1 and groupchat)", domain.Query{Groupchat: true, Max: 50, Last: true}},
			{"last 50 with=room2", domain.Query{Groupchat: true, With: "room2@conference.x", Max: 50, Last: true}},
			{"last 50 with=contact", domain.Query{Groupchat: true, With: "c3@x", Max: 50, Last: true}},
			{"last 50 without groupchat", domain.Query{Max: 50, Last: true}},
			{"50 before the middle", domain.Query{Groupchat: true, Max: 50, Last: true, RSMBefore: mid}},
			{"50 after the middle", domain.Query{Groupchat: true, Max: 50, RSMAfter: mid}},
			{"a minute from start=", domain.Query{Groupchat: true, Max: 50, Start: t0.Add(10 * time.Second), End: t0.Add(70 * time.Second)}},
			{"ids (2)", domain.Query{Groupchat: true, IDs: []string{mid, late}}},
			{"first 50", domain.Query{Groupchat: true, Max: 50}},
			{"50 after the first", domain.Query{Groupchat: true, Max: 50, RSMAfter: first}},
		}
		ctx := context.Background()
		fmt.Printf("\nMAM on me@x: %d entries (%d 1:1, %d groupchat in %d rooms of %d), out of a room and back every %d of its messages, %d rooms left before; µs over %d queries each, models in turns\n",
			len(mine), readChats, readGroupchat, readRooms, readOccupants, stay, shape.past, readRepeats)
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  query\tcopies p50\tp99\tstays p50\tp99\tstays/copies p50")
		for _, x := range qs {
			x.q.MaxBytes = 2 << 20
			lat := make([][]time.Duration, 2)
			var pages [2]domain.Page
			for range readRepeats {
				for i, f := range fs {
					start := time.Now()
					p, err := f.reader.Query(ctx, "me@x", x.q)
					lat[i] = append(lat[i], time.Since(start))
					if err != nil {
						b.Fatalf("%s: %v", x.name, err)
					}
					pages[i] = p
				}
			}
			if !reflect.DeepEqual(pages[0], pages[1]) || len(pages[0].Entries) == 0 {
				b.Fatalf("%s: the models answer %d and %d entries, or differently", x.name, len(pages[0].Entries), len(pages[1].Entries))
			}
			p := func(i int, q float64) time.Duration {
				slices.Sort(lat[i])
				return lat[i][int(q*float64(len(lat[i])-1))]
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%.2fx\n", x.name, p(0, .5).Microseconds(), p(0, .99).Microseconds(),
				p(1, .5).Microseconds(), p(1, .99).Microseconds(), float64(p(1, .5))/float64(p(0, .5)))
			b.Run(fmt.Sprintf("stay-%d-past-%d/%s", stay, shape.past, x.name), func(b *testing.B) {
				b.ReportMetric(float64(p(0, .5).Microseconds()), "copies-p50-µs")
				b.ReportMetric(float64(p(1, .5).Microseconds()), "stays-p50-µs")
			})
		}
		tw.Flush()
	}
}
