package sealing

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore/sqlite"
)

// member finds a top-level member of compact JSON only, and says so
// whenever encoding/json must decide instead.
func TestMember(t *testing.T) {
	for _, c := range []struct {
		data string
		want string // the stanza member's value; "" when not ok
	}{
		{`{"a":"x","stanza":"\u003cm/\u003e","b":1}`, `"\u003cm/\u003e"`},
		{`{"stanza":"only"}`, `"only"`},
		{`{"a":{"stanza":"no"},"stanza":"yes"}`, `"yes"`},
		{`{"a":"\"stanza\":\"no\"}{[","stanza":"yes","z":null}`, `"yes"`},
		{`{"a":[1,{"b":"]}"}],"stanza":"yes","c":true}`, `"yes"`},
		{`{"n":-1.5e3,"stanza":{"sealed":"k","box":"Yg=="},"t":false}`, `{"sealed":"k","box":"Yg=="}`},
		{`{"a":1}`, ""},
		{`{}`, ""},
		{`{"a": 1,"stanza":"x"}`, ""},       // not compact
		{`{"st\u0061nza":"x"}`, ""},         // an escaped key
		{`{"stanza":"a","stanza":"b"}`, ""}, // twice
		{`{"stanza":"x"`, ""},
		{`{"stanza":"x"}{}`, ""},
		{`{"stanza":"x",}`, ""},
		{`{"stanza":}`, ""},
		{`{"stanza":"x\"}`, ""},
		{`{"a":{"b":1},"stanza":"x"`, ""},
		{`["stanza","x"]`, ""},
		{``, ""},
	} {
		all := map[string]json.RawMessage{}
		start, end, ok := member([]byte(c.data), "stanza", all)
		if got := ""; ok != (c.want != "") || (ok && c.data[start:end] != c.want) {
			if ok {
				got = c.data[start:end]
			}
			t.Errorf("member(%s) = %q, %v; want %q", c.data, got, ok, c.want)
			continue
		}
		if !ok {
			continue
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal([]byte(c.data), &d); err != nil {
			t.Fatalf("%s: %v", c.data, err)
		}
		if !reflect.DeepEqual(all, d) {
			t.Errorf("member(%s) gave members %q, encoding/json %q", c.data, all, d)
		}
	}
}

// Seal splices the sealed field into data in the form the store keeps,
// leaving every other member's bytes as they were, and Open gives back
// the very bytes sealed; data in another form goes through encoding/json
// and opens to the same content.
func TestSpliceRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.db")
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := OpenSQLKeys(ctx, db, bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	const stanza = `"\u003cmessage xmlns='jabber:client'\u003e\u003cbody\u003e{\"sealed\":\"no\"} \\ SECRET\u003c/body\u003e\u003c/message\u003e"`
	ids := event.NewIDs()
	for _, c := range []struct {
		data    string
		spliced bool
	}{
		{`{"from":"alice@example.com/a","to":"bob@example.com","kind":"chat","stanza":` + stanza + `,"sender_id":"s:1","well_formed":true}`, true},
		{`{"stanza":` + stanza + `,"from":"alice@example.com/a","x":{"stanza":"nested"}}`, true},
		{`{"from": "alice@example.com/a", "stanza": ` + stanza + `}`, false},
		{`{"from":"alice@example.com/a","stanza":"first","stanza":` + stanza + `}`, false},
	} {
		e := event.Envelope{ID: ids.New(time.Now()), Stream: archive.Stream("alice@example.com", "bob@example.com"),
			Version: 1, Type: archive.TypeMessageSent, Schema: archive.Schema, OccurredAt: time.Now().UTC(), Data: json.RawMessage(c.data)}
		out, err := New(keys, true).Seal(ctx, []event.Envelope{e})
		if err != nil {
			t.Fatalf("%s: %v", c.data, err)
		}
		kept := out[0].Data
		if bytes.Contains(kept, []byte("SECRET")) || bytes.Contains(kept, []byte(`"first"`)) || !bytes.Contains(kept, sealedMark) {
			t.Fatalf("%s is kept as %s", c.data, kept)
		}
		if string(e.Data) != c.data {
			t.Fatalf("Seal changed its argument: %s", e.Data)
		}
		if c.spliced {
			// Every member but the stanza keeps its bytes and place.
			s0, e0, _ := member(e.Data, "stanza", nil)
			s1, e1, ok := member(kept, "stanza", nil)
			if !ok || c.data[:s0] != string(kept[:s1]) || c.data[e0:] != string(kept[e1:]) {
				t.Fatalf("%s is kept as %s", c.data, kept)
			}
			if _, ok := parseSealed(kept[s1:e1]); !ok {
				t.Fatalf("the sealed field %s is not in appendSealed's form", kept[s1:e1])
			}
		}
		// A codec of its own, as another process would open it.
		back := []event.Envelope{out[0]}
		if err := New(keys, true).Open(ctx, back); err != nil {
			t.Fatalf("%s: %v", c.data, err)
		}
		if c.spliced && string(back[0].Data) != c.data {
			t.Errorf("%s opens as %s", c.data, back[0].Data)
		}
		var want, got map[string]any
		json.Unmarshal(e.Data, &want)
		if err := json.Unmarshal(back[0].Data, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s opens as %s (%v)", c.data, back[0].Data, err)
		}
	}
}
