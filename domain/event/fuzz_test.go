package event_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

// FuzzEnvelopeJSON feeds arbitrary bytes to the envelope decoder. Whatever it
// accepts must encode, decode again and encode to the same bytes, and must
// keep the bytes the hash covers: `annals audit query --json` output has to
// verify when read back.
func FuzzEnvelopeJSON(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatalf("no samples in %s to seed from", samplesDir)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`"x"`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM"}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","data":{ "a" : [1, 2] }}`,
		`{"id":"01kkntq2cn83f472s9nw1kxdjm","occurred_at":"2026-03-14T10:26:53+01:00","hash":"ABCD","position":"007/8"}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","data":{"body":"<b>&amp;</b>"}}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","data":null}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"0000-01-01T00:00:00+01:00"}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","stream":"a\u0000\ud800"}`,
		`{"id":"81KKNTQ2CN83F472S9NW1KXDJM"}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","hash":"abc"}`,
		`{"id":"01KKNTQ2CN83F472S9NW1KXDJM","occurred_at":"2026-03-14T09:26:53Z","position":"1/"}`,
		`{"version":-1}`,
		`{"data":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var first event.Envelope
		if err := json.Unmarshal(in, &first); err != nil {
			return // rejecting is fine; panicking is not
		}
		b1, err := json.Marshal(first)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", first, err)
		}
		var second event.Envelope
		if err := json.Unmarshal(b1, &second); err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", b1, err)
		}
		b2, err := json.Marshal(second)
		if err != nil {
			t.Fatalf("cannot re-encode %+v: %v", second, err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding is not stable\nfirst:  %s\nsecond: %s", b1, b2)
		}
		if c1, c2 := event.Canonical(first), event.Canonical(second); !bytes.Equal(c1, c2) {
			t.Fatalf("a trip through JSON changed the hashed bytes\nfirst:  %q\nsecond: %q", c1, c2)
		}
	})
}

// FuzzCanonical checks that Canonical is injective on the variable-length
// fields: two envelopes that encode the same must be the same envelope.
func FuzzCanonical(f *testing.F) {
	f.Add("ab", "c", "x", "{}", uint64(1), "a", "bc", "x", "{}", uint64(1))
	f.Add("a", "", "", "{}", uint64(1), "", "a", "", "{}", uint64(1))
	f.Add("s", "T", "c", `{"a":1}`, uint64(256), "s", "T", "c\x00", `{"a":1}`, uint64(1))
	f.Fuzz(func(t *testing.T, s1, t1, c1, d1 string, v1 uint64, s2, t2, c2, d2 string, v2 uint64) {
		at := time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)
		a := event.Envelope{Stream: s1, Type: event.Type(t1), Cause: c1, Data: json.RawMessage(d1), Version: v1, Schema: 1, OccurredAt: at}
		b := event.Envelope{Stream: s2, Type: event.Type(t2), Cause: c2, Data: json.RawMessage(d2), Version: v2, Schema: 1, OccurredAt: at}
		same := s1 == s2 && t1 == t2 && c1 == c2 && d1 == d2 && v1 == v2
		if got := bytes.Equal(event.Canonical(a), event.Canonical(b)); got != same {
			t.Fatalf("encodings equal = %v, envelopes equal = %v\na: %+v\nb: %+v", got, same, a, b)
		}
	})
}
