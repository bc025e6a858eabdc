package event_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*event.Envelope)
	}{
		{"full", func(*event.Envelope) {}},
		{"zero position is omitted", func(e *event.Envelope) { e.Position = event.Position{} }},
		{"commit and prepare differ", func(e *event.Envelope) { e.Position = event.Position{Commit: 7, Prepare: 3} }},
		{"whole second", func(e *event.Envelope) { e.OccurredAt = e.OccurredAt.Truncate(time.Second) }},
		{"empty cause", func(e *event.Envelope) { e.Cause = "" }},
		{"no hash yet", func(e *event.Envelope) { e.Hash = nil }},
		{"unicode and escapes", func(e *event.Envelope) {
			e.Stream = "room-café@muc.example.com"
			e.Cause = "id-\"quoted\"\t\u00e9"
			e.Data = json.RawMessage(`{"body":"\u00e9t\u00e9 \"x\""}`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			want := sample()
			tc.change(&want)
			// when
			b, err := want.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var got event.Envelope
			err = got.UnmarshalJSON(b)
			// then
			if err != nil {
				t.Fatalf("UnmarshalJSON(%s): %v", b, err)
			}
			if !equal(got, want) {
				t.Errorf("round trip through %s\n got %+v\nwant %+v", b, got, want)
			}
			if want.Position.IsZero() && bytes.Contains(b, []byte(`"position"`)) {
				t.Errorf("zero position written: %s", b)
			}
		})
	}
}

func TestUnmarshalJSONRejects(t *testing.T) {
	t.Parallel()
	good, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	// Each case corrupts one field of a good encoding.
	tests := []struct {
		name     string
		old, new string
	}{
		{"id too short", `"01KKNTQ2CN83F472S9NW1KXDJM"`, `"01KKNTQ2CN83F472S9NW1KXDJ"`},
		{"id with a letter outside Crockford base32", `"01KKNTQ2CN83F472S9NW1KXDJM"`, `"01KKNTQ2CN83F472S9NW1KXDJU"`},
		{"id overflows 128 bits", `"01KKNTQ2CN83F472S9NW1KXDJM"`, `"81KKNTQ2CN83F472S9NW1KXDJM"`},
		{"id missing", `"01KKNTQ2CN83F472S9NW1KXDJM"`, `""`},
		{"time not RFC 3339", `"2026-03-14T09:26:53.589793238Z"`, `"14 Mar 26 09:26 UTC"`},
		{"time without zone", `"2026-03-14T09:26:53.589793238Z"`, `"2026-03-14T09:26:53.589793238"`},
		{"time missing", `"2026-03-14T09:26:53.589793238Z"`, `""`},
		// In UTC these are years -1 and 10000, which RFC 3339 cannot write.
		{"time before year 0 in UTC", `"2026-03-14T09:26:53.589793238Z"`, `"0000-01-01T00:00:00+01:00"`},
		{"time after year 9999 in UTC", `"2026-03-14T09:26:53.589793238Z"`, `"9999-12-31T23:30:00-01:00"`},
		{"hash not hex", `"abab`, `"zzab`},
		{"hash of odd length", `"abab`, `"aba`},
		{"position not a number", `"41"`, `"x"`},
		{"version a string", `"version":1`, `"version":"1"`},
		{"data not JSON", `"data":{`, `"data":{,`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			if !bytes.Contains(good, []byte(tc.old)) {
				t.Fatalf("%s not in %s", tc.old, good)
			}
			bad := strings.Replace(string(good), tc.old, tc.new, 1)
			// when
			var e event.Envelope
			err := json.Unmarshal([]byte(bad), &e)
			// then
			if err == nil {
				t.Errorf("Unmarshal(%s) = %+v, want an error", bad, e)
			}
		})
	}
}

// TestJSONKeepsTheHash writes a stored event the ways Annals and its users
// write JSON and reads it back: the hash must still verify, or an audit of an
// exported log fails on honest data.
func TestJSONKeepsTheHash(t *testing.T) {
	t.Parallel()
	writers := []struct {
		name  string
		write func(event.Envelope) ([]byte, error)
	}{
		{"json.Marshal", func(e event.Envelope) ([]byte, error) { return json.Marshal(e) }},
		{"json.MarshalIndent", func(e event.Envelope) ([]byte, error) { return json.MarshalIndent(e, "", "  ") }},
		{"Encoder without HTML escaping", func(e event.Envelope) ([]byte, error) {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "\t")
			err := enc.Encode(e)
			return b.Bytes(), err
		}},
	}
	datas := []string{
		`{"jid":"juliet@example.com"}`,
		`{ "a" : [ 1, 2 ], "b" : { } }`,
		"{\"body\":\"<b>&</b> \u2028 \u2029 été\"}",
		`{"body":"\u003c already escaped \u00e9"}`,
	}
	for _, w := range writers {
		for _, d := range datas {
			t.Run(w.name+"/"+d, func(t *testing.T) {
				t.Parallel()
				// given
				e := sample()
				e.Data = json.RawMessage(d)
				if err := e.Normalize(); err != nil {
					t.Fatal(err)
				}
				e.Hash = event.Chain(nil, e)
				// when
				b, err := w.write(e)
				if err != nil {
					t.Fatal(err)
				}
				var got event.Envelope
				err = json.Unmarshal(b, &got)
				// then
				if err != nil {
					t.Fatalf("Unmarshal(%s): %v", b, err)
				}
				if !event.Verify(nil, got) {
					t.Errorf("hash no longer verifies: data %s read back as %s", e.Data, got.Data)
				}
			})
		}
	}
}

// TestMarshalJSONLayout pins the field names and order of the wire format;
// frozen samples in testdata/events depend on it.
func TestMarshalJSONLayout(t *testing.T) {
	t.Parallel()
	// given
	e := sample()
	// when
	b, err := json.Marshal(e)
	// then
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"01KKNTQ2CN83F472S9NW1KXDJM","stream":"account-juliet@example.com","version":1,` +
		`"position":"41","type":"AccountCreated","schema":1,"occurred_at":"2026-03-14T09:26:53.589793238Z",` +
		`"cause":"reg-5f2c9e","data":{"jid":"juliet@example.com"},` +
		`"hash":"abababababababababababababababababababababababababababababababab"}`
	if string(b) != want {
		t.Errorf("json.Marshal =\n%s\nwant\n%s", b, want)
	}
	// A proposed event with no data still writes an object, never null, and
	// reads back as that object, as Normalize would make it.
	e.Data = nil
	b, err = json.Marshal(e)
	if err != nil || !bytes.Contains(b, []byte(`"data":{}`)) {
		t.Errorf("json.Marshal with nil data = %s, %v", b, err)
	}
	var back event.Envelope
	if err := json.Unmarshal(bytes.Replace(b, []byte(`"data":{},`), nil, 1), &back); err != nil || string(back.Data) != `{}` {
		t.Errorf("missing data read back as %s, %v; want {}", back.Data, err)
	}
}
