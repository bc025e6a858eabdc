package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"annals.im/annals/domain/event"
)

// sample returns a fully populated, normalized envelope. Every test starts
// from a fresh copy so that a mutation in one case cannot leak into another.
func sample() event.Envelope {
	return event.Envelope{
		ID:         ulid.MustParseStrict("01KKNTQ2CN83F472S9NW1KXDJM"),
		Stream:     "account-juliet@example.com",
		Version:    1,
		Position:   event.Position{Commit: 41, Prepare: 41},
		Type:       "AccountCreated",
		Schema:     1,
		OccurredAt: time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC),
		Cause:      "reg-5f2c9e",
		Data:       json.RawMessage(`{"jid":"juliet@example.com"}`),
		Hash:       bytes.Repeat([]byte{0xab}, 32),
	}
}

// equal compares envelopes field by field: time.Time must be compared with
// Equal, and a nil and an empty Hash mean the same thing.
func equal(a, b event.Envelope) bool {
	return a.ID == b.ID && a.Stream == b.Stream && a.Version == b.Version &&
		a.Position == b.Position && a.Type == b.Type && a.Schema == b.Schema &&
		a.OccurredAt.Equal(b.OccurredAt) && a.Cause == b.Cause &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Hash, b.Hash)
}

// fieldChanges alters exactly one field each. Canonical and the chain must
// see every one of them except Position and Hash.
var fieldChanges = []struct {
	name    string
	change  func(*event.Envelope)
	covered bool // whether Canonical, and so the hash, covers the field
}{
	{"id", func(e *event.Envelope) { e.ID[15]++ }, true},
	{"stream", func(e *event.Envelope) { e.Stream = "account-romeo@example.com" }, true},
	{"version", func(e *event.Envelope) { e.Version++ }, true},
	{"type", func(e *event.Envelope) { e.Type = "AccountDeleted" }, true},
	{"schema", func(e *event.Envelope) { e.Schema++ }, true},
	{"occurred_at by one nanosecond", func(e *event.Envelope) { e.OccurredAt = e.OccurredAt.Add(time.Nanosecond) }, true},
	{"cause", func(e *event.Envelope) { e.Cause = "reg-5f2c9f" }, true},
	{"empty cause", func(e *event.Envelope) { e.Cause = "" }, true},
	{"data", func(e *event.Envelope) { e.Data = json.RawMessage(`{"jid":"romeo@example.com"}`) }, true},
	// Position is assigned at commit, after the hash on a remote store.
	{"position", func(e *event.Envelope) { e.Position = event.Position{Commit: 99, Prepare: 98} }, false},
	{"hash", func(e *event.Envelope) { e.Hash = []byte{1, 2, 3} }, false},
	// The instant is hashed, not the zone it was written in; Normalize
	// makes every stored time UTC anyway.
	{"same instant in another zone", func(e *event.Envelope) {
		e.OccurredAt = e.OccurredAt.In(time.FixedZone("CET", 3600))
	}, false},
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range fieldChanges {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			base, changed := sample(), sample()
			// when
			tc.change(&changed)
			// then
			differ := !bytes.Equal(event.Canonical(base), event.Canonical(changed))
			if differ != tc.covered {
				t.Errorf("encodings differ = %v, want %v", differ, tc.covered)
			}
		})
	}
}

// TestCanonicalBoundaries checks pairs whose fields concatenate to the same
// bytes: only the length prefixes tell them apart.
func TestCanonicalBoundaries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b func(*event.Envelope)
	}{
		{"stream and type",
			func(e *event.Envelope) { e.Stream, e.Type = "ab", "c" },
			func(e *event.Envelope) { e.Stream, e.Type = "a", "bc" }},
		{"cause and data",
			func(e *event.Envelope) { e.Cause, e.Data = "x", json.RawMessage(`{}`) },
			func(e *event.Envelope) { e.Cause, e.Data = "x{", json.RawMessage(`}`) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			a, b := sample(), sample()
			tc.a(&a)
			tc.b(&b)
			// when
			ca, cb := event.Canonical(a), event.Canonical(b)
			// then
			if bytes.Equal(ca, cb) {
				t.Errorf("two different envelopes share the encoding %q", ca)
			}
		})
	}
}

// chain returns three consecutive, correctly chained events of one stream.
func chain() []event.Envelope {
	evs := make([]event.Envelope, 3)
	var prev []byte
	for i := range evs {
		e := sample()
		e.ID[15] += byte(i)
		e.Version = uint64(i + 1)
		e.Position = event.Position{Commit: uint64(40 + i), Prepare: uint64(40 + i)}
		e.OccurredAt = e.OccurredAt.Add(time.Duration(i) * time.Minute)
		e.Hash = event.Chain(prev, e)
		prev = e.Hash
		evs[i] = e
	}
	return evs
}

// prevHash is the hash before evs[i] in its stream.
func prevHash(evs []event.Envelope, i int) []byte {
	if i == 0 {
		return nil
	}
	return evs[i-1].Hash
}

func TestChainVerifies(t *testing.T) {
	t.Parallel()
	// given
	evs := chain()
	// when, then
	for i, e := range evs {
		if !event.Verify(prevHash(evs, i), e) {
			t.Errorf("version %d does not verify", e.Version)
		}
		if len(e.Hash) != 32 {
			t.Errorf("version %d: hash has %d bytes, want 32 (SHA-256)", e.Version, len(e.Hash))
		}
	}
	// A chain is not a bag of hashes: an event must follow its own predecessor.
	if event.Verify(evs[0].Hash, evs[2]) {
		t.Error("version 3 verifies after version 1")
	}
	if event.Verify(nil, evs[1]) {
		t.Error("version 2 verifies as the first event of the stream")
	}
}

func TestChainDetectsTampering(t *testing.T) {
	t.Parallel()
	for _, tc := range fieldChanges {
		if tc.name == "hash" {
			continue // covered by the "stored hash" cases below
		}
		for i := range 3 {
			t.Run(tc.name+"/"+string(rune('1'+i)), func(t *testing.T) {
				t.Parallel()
				// given
				evs := chain()
				// when
				tc.change(&evs[i])
				// then
				got := event.Verify(prevHash(evs, i), evs[i])
				if got == tc.covered {
					t.Errorf("Verify = %v after changing %s, want %v", got, tc.name, !tc.covered)
				}
			})
		}
	}
	tamper := []struct {
		name string
		prev func([]byte) []byte
		hash func([]byte) []byte
	}{
		{"prev hash with one bit flipped", flipBit, keep},
		{"prev hash truncated", func(b []byte) []byte { return b[:len(b)-1] }, keep},
		{"prev hash missing", func([]byte) []byte { return nil }, keep},
		{"stored hash with one bit flipped", keep, flipBit},
		{"stored hash missing", keep, func([]byte) []byte { return nil }},
	}
	for _, tc := range tamper {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			evs := chain()
			e := evs[2]
			// when
			prev := tc.prev(evs[1].Hash)
			e.Hash = tc.hash(e.Hash)
			// then
			if event.Verify(prev, e) {
				t.Error("tampered chain verifies")
			}
		})
	}
}

func keep(b []byte) []byte { return b }

func flipBit(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0x01
	return c
}

func proposed() event.Envelope {
	e := sample()
	e.Stream, e.Version, e.Position, e.Hash = "", 0, event.Position{}, nil
	return e
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CEST", 2*3600)
	tests := []struct {
		name     string
		change   func(*event.Envelope)
		wantErr  bool
		wantData string    // checked when there is no error
		wantAt   time.Time // checked when there is no error
	}{
		{"already normal", func(*event.Envelope) {}, false,
			`{"jid":"juliet@example.com"}`, sample().OccurredAt},
		{"spaces are compacted", func(e *event.Envelope) { e.Data = json.RawMessage(`{ "a" : 1 }`) }, false,
			`{"a":1}`, sample().OccurredAt},
		{"indentation is compacted", func(e *event.Envelope) { e.Data = json.RawMessage("{\n\t\"a\": [1, 2],\r\n\"b\": \"x y\"\n}") }, false,
			`{"a":[1,2],"b":"x y"}`, sample().OccurredAt},
		{"white space inside strings is kept", func(e *event.Envelope) { e.Data = json.RawMessage(`{"a":" \" b "}`) }, false,
			`{"a":" \" b "}`, sample().OccurredAt},
		{"empty data becomes an empty object", func(e *event.Envelope) { e.Data = nil }, false,
			`{}`, sample().OccurredAt},
		{"time becomes UTC", func(e *event.Envelope) { e.OccurredAt = time.Date(2026, 3, 14, 11, 26, 53, 589793238, paris) }, false,
			`{"jid":"juliet@example.com"}`, sample().OccurredAt},
		// json.Marshal escapes these whenever it writes the envelope, so the
		// hash must cover them escaped.
		{"HTML characters are escaped as json.Marshal writes them", func(e *event.Envelope) {
			e.Data = json.RawMessage("{\"body\":\"<b>&</b> \u2028\"}")
		}, false, `{"body":"\u003cb\u003e\u0026\u003c/b\u003e \u2028"}`, sample().OccurredAt},
		{"other non-ASCII is kept", func(e *event.Envelope) { e.Data = json.RawMessage(`{"body":"été – ok"}`) }, false,
			`{"body":"été – ok"}`, sample().OccurredAt},
		{"earliest time a Unix nanosecond holds", func(e *event.Envelope) { e.OccurredAt = time.Unix(0, math.MinInt64) }, false,
			`{"jid":"juliet@example.com"}`, time.Unix(0, math.MinInt64)},
		{"zero id", func(e *event.Envelope) { e.ID = ulid.ULID{} }, true, "", time.Time{}},
		{"empty type", func(e *event.Envelope) { e.Type = "" }, true, "", time.Time{}},
		{"type with a space", func(e *event.Envelope) { e.Type = "Account Created" }, true, "", time.Time{}},
		{"type with a newline", func(e *event.Envelope) { e.Type = "AccountCreated\n" }, true, "", time.Time{}},
		{"schema 0", func(e *event.Envelope) { e.Schema = 0 }, true, "", time.Time{}},
		{"negative schema", func(e *event.Envelope) { e.Schema = -1 }, true, "", time.Time{}},
		{"zero time", func(e *event.Envelope) { e.OccurredAt = time.Time{} }, true, "", time.Time{}},
		// Canonical hashes Unix nanoseconds; outside their range two
		// instants would share a hash.
		{"time before 1677", func(e *event.Envelope) { e.OccurredAt = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }, true, "", time.Time{}},
		{"time after 2262", func(e *event.Envelope) { e.OccurredAt = time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC) }, true, "", time.Time{}},
		{"invalid JSON", func(e *event.Envelope) { e.Data = json.RawMessage(`{"a":`) }, true, "", time.Time{}},
		// JSON null reads back as missing data; Data is an object.
		{"null data", func(e *event.Envelope) { e.Data = json.RawMessage(`null`) }, true, "", time.Time{}},
		{"array data", func(e *event.Envelope) { e.Data = json.RawMessage(` [1]`) }, true, "", time.Time{}},
		{"string data", func(e *event.Envelope) { e.Data = json.RawMessage(`"x"`) }, true, "", time.Time{}},
		{"two JSON values", func(e *event.Envelope) { e.Data = json.RawMessage(`{} {}`) }, true, "", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			e := proposed()
			tc.change(&e)
			// when
			err := e.Normalize()
			// then
			if tc.wantErr {
				if !errors.Is(err, event.ErrInvalid) {
					t.Fatalf("Normalize() = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(): %v", err)
			}
			if string(e.Data) != tc.wantData {
				t.Errorf("Data = %s, want %s", e.Data, tc.wantData)
			}
			if !e.OccurredAt.Equal(tc.wantAt) || e.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt = %v, want %v in UTC", e.OccurredAt, tc.wantAt)
			}
			// Normalizing twice changes nothing: a store may normalize what a
			// caller already normalized.
			again := e
			if err := again.Normalize(); err != nil || !equal(again, e) {
				t.Errorf("second Normalize changed the envelope or failed: %v", err)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	type data struct {
		JID string `json:"jid"`
	}
	tests := []struct {
		name    string
		schema  int
		known   int
		raw     string
		wantErr error // nil: decodes
		anyErr  bool  // an error that is not a sentinel
	}{
		{"schema equal to known", 1, 1, `{"jid":"juliet@example.com"}`, nil, false},
		{"older schema", 1, 2, `{"jid":"juliet@example.com"}`, nil, false},
		{"schema newer than known", 2, 1, `{"jid":"juliet@example.com"}`, event.ErrSchemaTooNew, false},
		// The schema is checked before the data: a newer layout may not even parse.
		{"newer schema with data this build cannot read", 3, 1, `[1]`, event.ErrSchemaTooNew, false},
		{"data of the wrong shape", 1, 1, `{"jid":7}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			e := sample()
			e.Schema, e.Data = tc.schema, json.RawMessage(tc.raw)
			// when
			var d data
			err := e.Decode(tc.known, &d)
			// then
			switch {
			case tc.anyErr:
				if err == nil || errors.Is(err, event.ErrSchemaTooNew) {
					t.Errorf("Decode() = %v, want a decoding error", err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Decode() = %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("Decode(): %v", err)
			case d.JID != "juliet@example.com":
				t.Errorf("decoded %+v", d)
			}
		})
	}
}

func TestIDsIncreaseWithinOneMillisecond(t *testing.T) {
	t.Parallel()
	// given
	ids := event.NewIDs()
	at := time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)
	// when
	got := make([]ulid.ULID, 1000)
	for i := range got {
		got[i] = ids.New(at)
	}
	// then
	for i, id := range got {
		if id.Time() != ulid.Timestamp(at) {
			t.Fatalf("id %d has time %d, want %d", i, id.Time(), ulid.Timestamp(at))
		}
		if i > 0 && got[i-1].Compare(id) >= 0 {
			t.Fatalf("id %d (%s) does not follow id %d (%s)", i, id, i-1, got[i-1])
		}
	}
}

func TestIDsConcurrent(t *testing.T) {
	t.Parallel()
	// given
	const goroutines, each = 8, 500
	ids := event.NewIDs()
	at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
	out := make([][]ulid.ULID, goroutines)
	// when
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				out[g] = append(out[g], ids.New(at))
			}
		})
	}
	wg.Wait()
	// then
	seen := make(map[ulid.ULID]bool, goroutines*each)
	for g, list := range out {
		for i, id := range list {
			if seen[id] {
				t.Fatalf("duplicate id %s", id)
			}
			seen[id] = true
			// Each goroutine sees its own IDs in order, since all share one
			// monotonic source under one lock.
			if i > 0 && list[i-1].Compare(id) >= 0 {
				t.Fatalf("goroutine %d: id %d does not follow id %d", g, i, i-1)
			}
		}
	}
}

func TestNewStampsTheEnvelope(t *testing.T) {
	t.Parallel()
	// given
	ids := event.NewIDs()
	at := time.Date(2026, 3, 14, 11, 26, 53, 589793238, time.FixedZone("CEST", 2*3600))
	// when
	e, err := event.New(ids, at, "AccountCreated", 1, "reg-5f2c9e", struct {
		JID string `json:"jid"`
	}{"juliet@example.com"})
	// then
	if err != nil {
		t.Fatal(err)
	}
	if e.ID.Time() != ulid.Timestamp(at) || e.Type != "AccountCreated" || e.Schema != 1 ||
		e.Cause != "reg-5f2c9e" || string(e.Data) != `{"jid":"juliet@example.com"}` ||
		!e.OccurredAt.Equal(at) || e.OccurredAt.Location() != time.UTC {
		t.Errorf("New() = %+v", e)
	}
	if _, err := event.New(ids, at, "X", 1, "", func() {}); err == nil {
		t.Error("New with unencodable data: no error")
	}
}

func TestValidStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		ok   bool
	}{
		{"account", "account-juliet@example.com", true},
		{"longest", strings.Repeat("a", event.MaxStreamLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", event.MaxStreamLen+1), false},
		{"invalid UTF-8", "account-\xff", false},
		{"control character", "account-a\nb", false},
	}
	for _, tc := range tests {
		err := event.ValidStream(tc.s)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, event.ErrInvalid)) {
			t.Errorf("%s: ValidStream = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// Guard against equal() silently ignoring a field added to Envelope later.
func TestEqualCoversEveryField(t *testing.T) {
	t.Parallel()
	if n := reflect.TypeFor[event.Envelope]().NumField(); n != 10 {
		t.Errorf("Envelope has %d fields; update equal() and fieldChanges, then this count", n)
	}
}
