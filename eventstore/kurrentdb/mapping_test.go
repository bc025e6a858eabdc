package kurrentdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"
	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
)

func TestULIDAsUUID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   ulid.ULID
		want string // the UUID KurrentDB shows
	}{
		{"min", ulid.ULID{0: 0, 15: 1}, "00000000-0000-0000-0000-000000000001"},
		{"max", ulid.MustParse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), "ffffffff-ffff-ffff-ffff-ffffffffffff"},
		{"typical", ulid.MustParse("01JDQ3W5ZK8Y6V9X2N4B7C1D0E"), "01936e3e-17f3-478d-b4f4-5522cec0b40e"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// when
			u := toUUID(tc.id)
			// then
			if got := u.String(); got != tc.want {
				t.Errorf("toUUID(%s) = %s, want %s", tc.id, got, tc.want)
			}
			if back := toULID(u); back != tc.id {
				t.Errorf("toULID(toUUID(%s)) = %s", tc.id, back)
			}
			// A server that answers with the string form gives the same bytes.
			parsed, err := uuid.Parse(u.String())
			if err != nil || toULID(parsed) != tc.id {
				t.Errorf("through the string form: %s, %v; want %s", toULID(parsed), err, tc.id)
			}
			// The client sends the two int64 halves and rebuilds from them.
			most, least := kurrentdb.UUIDAsInt64(u)
			rebuilt, err := kurrentdb.ParseUUIDFromInt64(most, least)
			if err != nil || toULID(rebuilt) != tc.id {
				t.Errorf("through the structured form: %s, %v; want %s", toULID(rebuilt), err, tc.id)
			}
		})
	}
}

func TestPositionMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		all  kurrentdb.Position
		want event.Position
	}{
		{"same", kurrentdb.Position{Commit: 4096, Prepare: 4096}, event.Position{Commit: 4096, Prepare: 4096}},
		{"second of a batch", kurrentdb.Position{Commit: 4096, Prepare: 4312}, event.Position{Commit: 4096, Prepare: 4312}},
		{"large", kurrentdb.Position{Commit: 1 << 62, Prepare: 1<<62 + 7}, event.Position{Commit: 1 << 62, Prepare: 1<<62 + 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// when
			got := toPosition(tc.all)
			// then
			if got != tc.want {
				t.Errorf("toPosition(%+v) = %+v, want %+v", tc.all, got, tc.want)
			}
			if back := fromPosition(got); back != tc.all {
				t.Errorf("fromPosition(%+v) = %#v, want %+v", got, back, tc.all)
			}
			// The text form Annals stores in checkpoints reads back too.
			if p, err := event.ParsePosition(got.String()); err != nil || p != got {
				t.Errorf("ParsePosition(%q) = %+v, %v", got.String(), p, err)
			}
		})
	}
	if got := fromPosition(event.Position{}); got != (kurrentdb.Start{}) {
		t.Errorf("fromPosition(zero) = %#v, want Start", got)
	}
}

func TestPositionOrder(t *testing.T) {
	t.Parallel()
	// $all orders by commit, then prepare; so must event.Position.
	ordered := []kurrentdb.Position{{Commit: 10, Prepare: 10}, {Commit: 10, Prepare: 250}, {Commit: 300, Prepare: 120}, {Commit: 300, Prepare: 300}, {Commit: 1000, Prepare: 1000}}
	for i := range ordered {
		for j := range ordered {
			p, q := toPosition(ordered[i]), toPosition(ordered[j])
			if got := p.Less(q); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v, want %v", p, q, got, i < j)
			}
		}
	}
}

func TestStreamState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expected int64
		want     kurrentdb.StreamState
	}{
		{eventstore.Any, kurrentdb.Any{}},
		{eventstore.NoStream, kurrentdb.NoStream{}},
		{1, kurrentdb.Revision(0)},
		{2, kurrentdb.Revision(1)},
		{700, kurrentdb.Revision(699)},
		{1 << 62, kurrentdb.Revision(1<<62 - 1)},
	}
	for _, tc := range tests {
		got, err := streamState(tc.expected)
		if err != nil || got != tc.want {
			t.Errorf("streamState(%d) = %#v, %v; want %#v", tc.expected, got, err, tc.want)
		}
	}
	for _, bad := range []int64{-2, -4, -1 << 63} {
		if got, err := streamState(bad); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("streamState(%d) = %#v, %v; want event.ErrInvalid", bad, got, err)
		}
	}
}

// stored is an envelope as Append writes it: stream, version and hash set.
func stored(t *testing.T, at time.Time, cause string, schema int, data string, prev []byte, version uint64) event.Envelope {
	t.Helper()
	e := event.Envelope{ID: ulid.Make(), Stream: "room-balcony@conference.example.com", Version: version,
		Type: "MessagePosted", Schema: schema, OccurredAt: at, Cause: cause, Data: json.RawMessage(data)}
	if err := e.Normalize(); err != nil {
		t.Fatal(err)
	}
	e.Hash = event.Chain(prev, e)
	return e
}

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	first := stored(t, time.Date(2026, 11, 30, 13, 0, 0, 1, time.UTC), "", 1, `{}`, nil, 1)
	tests := []struct {
		name string
		e    event.Envelope
		prev []byte // the hash before e in its stream
	}{
		{"first, no cause", first, nil},
		{"chained, cause", stored(t, time.Date(2026, 11, 30, 13, 0, 0, 999999999, time.UTC), "stanza-42", 1, `{"body":"hi"}`, first.Hash, 2), first.Hash},
		{"cause with quotes and unicode", stored(t, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), `c"ause\ ✓`, 3, `{"a":[1,2],"s":"<&>"}`, first.Hash, 9), first.Hash},
		{"local time stored as UTC", stored(t, time.Date(2030, 6, 1, 12, 0, 0, 5, time.FixedZone("X", 3600)), "x", 2, `{"n":1}`, nil, 1), nil},
		{"far future", stored(t, time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), "", 1, `{}`, nil, 1), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given what Append sends
			d, err := toEventData(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if d.ContentType != kurrentdb.ContentTypeJson || d.EventType != string(tc.e.Type) || toULID(d.EventID) != tc.e.ID {
				t.Fatalf("event data %+v", d)
			}
			// when KurrentDB gives it back
			pos := kurrentdb.Position{Commit: 812, Prepare: 900}
			r := &kurrentdb.RecordedEvent{EventID: d.EventID, EventType: d.EventType, ContentType: "application/json",
				StreamID: tc.e.Stream, EventNumber: tc.e.Version - 1, Position: pos, Data: d.Data, UserMetadata: d.Metadata}
			got, err := toEnvelope(r)
			// then
			if err != nil {
				t.Fatal(err)
			}
			// What is read back still verifies: the hash covers it all.
			if !event.Verify(tc.prev, got) {
				t.Errorf("the event read back does not verify against its chain")
			}
			want := tc.e
			want.Position = toPosition(pos)
			if !got.OccurredAt.Equal(want.OccurredAt) || got.OccurredAt.Location() != time.UTC {
				t.Errorf("occurred_at %v, want %v in UTC", got.OccurredAt, want.OccurredAt)
			}
			got.OccurredAt, want.OccurredAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			// Metadata is a flat object of strings (what MultiStreamAppend takes).
			var flat map[string]string
			if err := json.Unmarshal(d.Metadata, &flat); err != nil {
				t.Errorf("metadata %s is not map[string]string: %v", d.Metadata, err)
			}
		})
	}
}

func TestEnvelopeRejects(t *testing.T) {
	t.Parallel()
	good := stored(t, time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC), "c", 1, `{}`, nil, 1)
	d, err := toEventData(good)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(d.Metadata, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		meta []byte
		why  string
	}{
		{"no metadata", nil, "metadata"},
		{"not JSON", []byte("{nope"), "metadata"},
		{"another application's", []byte(`{"$correlationId":"x"}`), "layout"},
		{"newer layout", edit(func(m map[string]any) { m["annals"] = "2" }), "layout"},
		{"schema not a number", edit(func(m map[string]any) { m["schema"] = "one" }), "schema"},
		{"schema as JSON number", edit(func(m map[string]any) { m["schema"] = 1 }), "metadata"},
		{"time not RFC 3339", edit(func(m map[string]any) { m["occurred_at"] = "yesterday" }), "occurred_at"},
		{"hash not hex", edit(func(m map[string]any) { m["hash"] = "zz" }), "hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &kurrentdb.RecordedEvent{EventID: d.EventID, EventType: d.EventType, StreamID: good.Stream, Data: d.Data, UserMetadata: tc.meta}
			_, err := toEnvelope(r)
			if err == nil || !strings.Contains(err.Error(), "not an Annals event") || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("toEnvelope = %v, want an error about %s", err, tc.why)
			}
		})
	}
}

func TestSkipped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stream, typ string
		want        bool
	}{
		{"room-a@example.com", "MessagePosted", false},
		{"account-juliet@example.com", "SessionAttached", false},
		{"$stats-127.0.0.1:2113", "$statsCollected", true},
		{"$$room-a@example.com", "$metadata", true},
		{"$ce-room", "$>", true},
		{"room-a@example.com", "$>", true}, // a link written into a user stream
		{claimStream(ulid.Make()), claimType, true},
	}
	for _, tc := range tests {
		r := &kurrentdb.RecordedEvent{StreamID: tc.stream, EventType: tc.typ}
		if got := skipped(r); got != tc.want {
			t.Errorf("skipped(%s, %s) = %v, want %v", tc.stream, tc.typ, got, tc.want)
		}
	}
}

func TestValidStream(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"room-a@example.com", "account-juliet@example.com", "annals-other"} {
		if err := validStream(ok); err != nil {
			t.Errorf("validStream(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "$all", "$ce-room", "annals-id-01JDQ3W5ZK8Y6V9X2N4B7C1D0E", "a\nb"} {
		if err := validStream(bad); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("validStream(%q) = %v, want event.ErrInvalid", bad, err)
		}
	}
}

func TestProposal(t *testing.T) {
	t.Parallel()
	ids := event.NewIDs()
	at := time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC)
	e, err := event.New(ids, at, "MessagePosted", 1, "c", map[string]string{"body": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	e.Data = json.RawMessage(`{ "body" : "hi" }`)
	e.Version, e.Hash = 7, []byte("caller's")
	own, err := proposal("room-a@example.com", eventstore.Any, []event.Envelope{e})
	if err != nil {
		t.Fatal(err)
	}
	if own[0].Stream != "room-a@example.com" || own[0].Version != 0 || own[0].Hash != nil || !bytes.Equal(own[0].Data, []byte(`{"body":"hi"}`)) {
		t.Errorf("proposal = %+v, want stream set, version and hash cleared, data compact", own[0])
	}
	for _, tc := range []struct {
		name     string
		expected int64
		evs      []event.Envelope
	}{
		{"no events", eventstore.Any, nil},
		{"same id twice", eventstore.Any, []event.Envelope{e, e}},
		{"expected -2", -2, []event.Envelope{e}},
	} {
		if _, err := proposal("room-a@example.com", tc.expected, tc.evs); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: err = %v, want event.ErrInvalid", tc.name, err)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	got := (Options{}).withDefaults()
	if got.Log == nil {
		t.Errorf("no default logger")
	}
	got.Log = nil
	if got != (Options{SubscriptionBuffer: DefaultSubscriptionBuffer, MaxBatch: DefaultMaxBatch, SearchPage: DefaultSearchPage}) {
		t.Errorf("defaults = %+v", got)
	}
	set := Options{SubscriptionBuffer: 3, MaxBatch: 2, SearchPage: 1, Log: slog.Default()}
	if got := set.withDefaults(); got != set {
		t.Errorf("withDefaults(%+v) = %+v", set, got)
	}
}

// locate and sameIDs decide, from a stream read backwards, whether an
// append is a retry of events already stored.
func TestLocateRetry(t *testing.T) {
	t.Parallel()
	a, b, c, x := ulid.Make(), ulid.Make(), ulid.Make(), ulid.Make()
	at := func(id ulid.ULID, v uint64) event.Envelope { return event.Envelope{ID: id, Version: v} }
	index := map[ulid.ULID]int{a: 0, b: 1, c: 2} // an append of a, b, c
	tests := []struct {
		name      string
		page      []event.Envelope // newest first
		wantFirst uint64
		wantOK    bool
		wantErr   error
	}{
		{"not there", []event.Envelope{at(x, 9), at(x, 8)}, 0, false, nil},
		{"all at the top", []event.Envelope{at(c, 9), at(b, 8), at(a, 7)}, 7, true, nil},
		{"under later events", []event.Envelope{at(x, 12), at(x, 11), at(c, 10), at(b, 9)}, 8, true, nil},
		{"only the first in this page", []event.Envelope{at(x, 5), at(a, 4)}, 4, true, nil},
		{"the highest decides", []event.Envelope{at(b, 6), at(a, 2)}, 5, true, nil},
		{"no room below", []event.Envelope{at(c, 2), at(x, 1)}, 0, false, eventstore.ErrDuplicateID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			first, ok, err := locate("room-a@example.com", tc.page, index)
			if first != tc.wantFirst || ok != tc.wantOK || !errors.Is(err, tc.wantErr) {
				t.Errorf("locate = %d, %v, %v; want %d, %v, %v", first, ok, err, tc.wantFirst, tc.wantOK, tc.wantErr)
			}
		})
	}
	own := []event.Envelope{{ID: a}, {ID: b}}
	for _, tc := range []struct {
		got  []event.Envelope
		want bool
	}{
		{[]event.Envelope{at(a, 3), at(b, 4)}, true},
		{[]event.Envelope{at(a, 3)}, false},           // the rest never written
		{[]event.Envelope{at(a, 3), at(x, 4)}, false}, // written around other events
		{[]event.Envelope{at(b, 3), at(a, 4)}, false}, // another order
		{[]event.Envelope{at(a, 3), at(b, 4), at(c, 5)}, false},
	} {
		if got := sameIDs(tc.got, own); got != tc.want {
			t.Errorf("sameIDs(%v) = %v, want %v", tc.got, got, tc.want)
		}
	}
}
