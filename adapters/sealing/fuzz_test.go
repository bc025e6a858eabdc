package sealing

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
)

// FuzzMember: member and splice read what the log holds, which an
// attacker with the file may have written. On any bytes they must not
// panic; on a valid JSON object, what member finds is what encoding/json
// decodes for that name, and splicing a value in gives valid JSON with
// that value under the name. Seeds: the frozen events' data
// (testdata/events).
func FuzzMember(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/events/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var e event.Envelope
		if err := json.Unmarshal(b, &e); err == nil {
			f.Add([]byte(e.Data), "stanza")
			f.Add([]byte(e.Data), "payload")
		}
	}
	f.Add([]byte(`{"a":1,"stanza":"x","a":2}`), "stanza")
	f.Add([]byte(`{"stanza":{"sealed":"k","box":"AA=="},"z":[{"}":"]"}]}`), "stanza")
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		all := map[string]json.RawMessage{}
		start, end, ok := member(data, name, all)
		if !ok {
			return
		}
		if start < 0 || end > len(data) || start > end {
			t.Fatalf("member gave [%d:%d] of %d bytes", start, end, len(data))
		}
		if !json.Valid(data) {
			return // Open fails later on such data, in encoding/json or Decode
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(data, &d); err != nil {
			return // valid JSON but not an object of members
		}
		if !bytes.Equal(d[name], data[start:end]) {
			t.Fatalf("member found %q for %q; encoding/json decodes %q", data[start:end], name, d[name])
		}
		for k, v := range all {
			if !bytes.Equal(d[k], v) {
				t.Fatalf("member collected %q for %q; encoding/json decodes %q", v, k, d[k])
			}
		}
		out := splice(data, start, end, []byte(`"spliced"`))
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil || string(got[name]) != `"spliced"` {
			t.Fatalf("splicing into %q gave %q (%v)", data, out, err)
		}
	})
}

// FuzzOpen: a sealed field in hostile bytes never panics the codec, and
// opens only if it is the box sealed for that event and field.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"from":"a@x/r","stanza":{"sealed":"k","box":"AAAA"}}`))
	f.Add([]byte(`{"stanza":{"sealed":"","box":""},"stanza":"x"}`))
	f.Add([]byte(`{"stanza":{"sealed":"k\"","box":"!!"}}`))
	keys := &memKeys{}
	c := New(keys, true)
	ids := event.NewIDs()
	f.Fuzz(func(t *testing.T, data []byte) {
		if !bytes.Contains(data, sealedMark) {
			return
		}
		e := event.Envelope{ID: ids.New(time.Now()), Type: archive.TypeMessageSent, Schema: 1, Data: append([]byte(nil), data...)}
		_ = c.Open(context.Background(), []event.Envelope{e})
	})
}

// memKeys has no key at all: every box is erased.
type memKeys struct{}

func (*memKeys) Find(context.Context, string, Kind, int64) (Key, bool, error) {
	return Key{}, false, nil
}
func (*memKeys) Create(_ context.Context, owner string, kind Kind, period int64) (Key, error) {
	return Key{ID: newKeyID(), Owner: owner, Kind: kind, Period: period, Secret: make([]byte, 32)}, nil
}
func (*memKeys) Get(context.Context, string) (Key, bool, error)          { return Key{}, false, nil }
func (*memKeys) Owned(context.Context, string, int) ([]string, error)    { return nil, nil }
func (*memKeys) Ended(context.Context, time.Time, int) ([]string, error) { return nil, nil }
func (*memKeys) Destroy(context.Context, []string) error                 { return nil }
