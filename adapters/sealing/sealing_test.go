package sealing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"annals.im/annals/adapters/sealing"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
)

var kek = bytes.Repeat([]byte{7}, 32)

// open returns a store on path that seals with keys kept in its file.
func open(t *testing.T, path string, seal bool) (*sqlite.Store, *sealing.SQLKeys, *sealing.Codec) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlite.Options{Durability: sqlite.DurabilityNormal})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); db.Close() })
	keys, err := sealing.OpenSQLKeys(ctx, db, kek)
	if err != nil {
		t.Fatal(err)
	}
	c := sealing.New(keys, seal)
	s.SetCodec(c)
	return s, keys, c
}

func raw(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func chat(t *testing.T, ids *event.IDs, at time.Time, from, to, text string) event.Envelope {
	t.Helper()
	e, err := event.New(ids, at, archive.TypeMessageSent, archive.Schema, "test", archive.MessageSent{
		From: from, To: to, Kind: "chat", WellFormed: true,
		Stanza: "<message xmlns='jabber:client' type='chat'><body>" + text + "</body></message>"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func decodeChat(t *testing.T, e event.Envelope) archive.MessageSent {
	t.Helper()
	var d archive.MessageSent
	if err := e.Decode(archive.Schema, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Content is sealed in the log and opens for readers; erasing its
// author's keys leaves it unreadable to every new reader and to the
// reader that saw the erasure, while the chains still verify and the
// other party's words stay readable.
func TestSealOpenErase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "annals.db")
	s, keys, _ := open(t, path, true)
	ids := event.NewIDs()
	now := time.Now()
	alice := chat(t, ids, now, "alice@example.com/phone", "bob@example.com", "ALICE-SECRET-1")
	bob := chat(t, ids, now, "bob@example.com/pc", "alice@example.com", "BOB-WORDS-1")
	stream := archive.Stream("alice@example.com", "bob@example.com")
	got, err := s.Append(ctx, stream, eventstore.NoStream, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	if d := decodeChat(t, got[0]); !strings.Contains(d.Stanza, "ALICE-SECRET-1") {
		t.Fatalf("the append's answer is not the plain event: %s", got[0].Data)
	}
	item, _ := event.New(ids, now, pep.TypeItemPublished, pep.Schema, "test", pep.ItemPublished{
		Node: "urn:xmpp:bookmarks:1", Item: pep.Item{ID: "room@conf", Payload: "<conference xmlns='urn:xmpp:bookmarks:1' name='ALICE-BOOKMARK'/>"}})
	if _, err := s.Append(ctx, account.StreamOf("alice@example.com"), eventstore.Any, item); err != nil {
		t.Fatal(err)
	}

	// The log keeps boxes, never the text.
	r := raw(t, path)
	kept, err := r.ReadAll(ctx, event.Position{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range kept {
		if bytes.Contains(e.Data, []byte("SECRET")) || bytes.Contains(e.Data, []byte("BOOKMARK")) || bytes.Contains(e.Data, []byte("WORDS")) {
			t.Fatalf("the log keeps content in the clear: %s", e.Data)
		}
		if !bytes.Contains(e.Data, []byte(`"sealed":`)) {
			t.Fatalf("not sealed: %s", e.Data)
		}
	}
	if _, err := eventstore.Verify(ctx, r); err != nil {
		t.Fatalf("verify: %v", err)
	}

	// A fresh reader (another process) opens it.
	s2, _, _ := open(t, path, true)
	evs, err := s2.ReadStream(ctx, stream, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := decodeChat(t, evs[0]); !strings.Contains(d.Stanza, "ALICE-SECRET-1") || d.Erased {
		t.Fatalf("opened: %+v", d)
	}

	// Erase alice: the event first, then the keys.
	owned, err := keys.Owned(ctx, "alice@example.com", 0)
	if err != nil || len(owned) != 2 {
		t.Fatalf("alice's keys: %v %v (want a message key and a state key)", owned, err)
	}
	erase, _ := event.New(ids, time.Now(), account.TypeContentErased, account.Schema, "test", account.ContentErased{Keys: owned})
	if _, err := s.Append(ctx, account.StreamOf("alice@example.com"), eventstore.Any, erase); err != nil {
		t.Fatal(err)
	}
	// s2's codec has alice's key; reading the erasure makes it useless.
	if _, err := s2.ReadAll(ctx, event.Position{}, 100); err != nil {
		t.Fatal(err)
	}
	// Until the keys are destroyed only readers that saw the erasure
	// refuse them; after it, everyone.
	if err := keys.Destroy(ctx, owned); err != nil {
		t.Fatal(err)
	}
	s3, _, _ := open(t, path, true)
	for name, st := range map[string]*sqlite.Store{"the reader that saw the erasure": s2, "a new reader": s3} {
		evs, err := st.ReadStream(ctx, stream, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		a, b := decodeChat(t, evs[0]), decodeChat(t, evs[1])
		if !a.Erased || a.Stanza != "" || a.ErasedBytes != len(decodeChat(t, alice).Stanza) {
			t.Errorf("%s: alice's message opens as %+v", name, a)
		}
		if b.Erased || !strings.Contains(b.Stanza, "BOB-WORDS-1") {
			t.Errorf("%s: bob's message opens as %+v", name, b)
		}
		acct, err := st.ReadStream(ctx, account.StreamOf("alice@example.com"), 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		var it pep.ItemPublished
		if err := acct[0].Decode(pep.Schema, &it); err != nil || !it.Erased || it.Payload != "" {
			t.Errorf("%s: the bookmark opens as %+v (%v)", name, it, err)
		}
	}
	if _, err := eventstore.Verify(ctx, r); err != nil {
		t.Fatalf("verify after the erasure: %v", err)
	}

	// What alice writes next is sealed under a new key and opens.
	later := chat(t, ids, time.Now(), "alice@example.com/phone", "bob@example.com", "ALICE-AFTER")
	if _, err := s.Append(ctx, stream, eventstore.Any, later); err != nil {
		t.Fatal(err)
	}
	evs, err = s3.ReadStream(ctx, stream, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := decodeChat(t, evs[0]); !strings.Contains(d.Stanza, "ALICE-AFTER") {
		t.Fatalf("after the erasure: %+v", d)
	}
}

// Expiry destroys the message keys of days that ended by its time, and
// readers that saw the expiry treat them as gone at once.
func TestExpiry(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "annals.db")
	s, keys, _ := open(t, path, true)
	ids := event.NewIDs()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	old := chat(t, ids, now.Add(-72*time.Hour), "alice@example.com/a", "bob@example.com", "OLD")
	recent := chat(t, ids, now.Add(-time.Hour), "alice@example.com/a", "bob@example.com", "RECENT")
	stream := archive.Stream("alice@example.com", "bob@example.com")
	if _, err := s.Append(ctx, stream, eventstore.NoStream, old, recent); err != nil {
		t.Fatal(err)
	}
	before := now.Add(-48 * time.Hour)
	ended, err := keys.Ended(ctx, before, 0)
	if err != nil || len(ended) != 1 {
		t.Fatalf("ended keys: %v %v", ended, err)
	}
	exp, _ := archive.Expire(before, ids, now, "test")
	if _, err := s.Append(ctx, archive.ExpiryStream, eventstore.Any, exp...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAll(ctx, event.Position{}, 100); err != nil { // the codec sees the expiry
		t.Fatal(err)
	}
	evs, err := s.ReadStream(ctx, stream, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if d := decodeChat(t, evs[0]); !d.Erased {
		t.Errorf("the expired message still opens: %+v", d)
	}
	if d := decodeChat(t, evs[1]); d.Erased {
		t.Errorf("the recent message does not open: %+v", d)
	}
	if err := keys.Destroy(ctx, ended); err != nil {
		t.Fatal(err)
	}
	s2, _, _ := open(t, path, true)
	evs, _ = s2.ReadStream(ctx, stream, 1, 10)
	if d := decodeChat(t, evs[0]); !d.Erased {
		t.Errorf("after the keys are destroyed the expired message still opens: %+v", d)
	}
}

// With sealing off, appends keep their content and what was sealed before
// still opens.
func TestSealOff(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "annals.db")
	s, _, _ := open(t, path, true)
	ids := event.NewIDs()
	stream := archive.Stream("alice@example.com", "bob@example.com")
	if _, err := s.Append(ctx, stream, eventstore.NoStream, chat(t, ids, time.Now(), "alice@example.com/a", "bob@example.com", "SEALED")); err != nil {
		t.Fatal(err)
	}
	off, _, _ := open(t, path, false)
	if _, err := off.Append(ctx, stream, eventstore.Any, chat(t, ids, time.Now(), "alice@example.com/a", "bob@example.com", "PLAIN")); err != nil {
		t.Fatal(err)
	}
	evs, err := off.ReadStream(ctx, stream, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(decodeChat(t, evs[0]).Stanza, "SEALED") || !strings.Contains(decodeChat(t, evs[1]).Stanza, "PLAIN") {
		t.Fatalf("got %s / %s", evs[0].Data, evs[1].Data)
	}
	kept, _ := raw(t, path).ReadStream(ctx, stream, 1, 10)
	if !bytes.Contains(kept[1].Data, []byte("PLAIN")) || bytes.Contains(kept[0].Data, []byte("SEALED")) {
		t.Fatalf("kept: %s / %s", kept[0].Data, kept[1].Data)
	}
}

// A box moved to another event does not open: the event's ID is part of
// what it authenticates.
func TestBoxBoundToEvent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "annals.db")
	s, _, _ := open(t, path, true)
	ids := event.NewIDs()
	a := chat(t, ids, time.Now(), "alice@example.com/a", "bob@example.com", "ONE")
	b := chat(t, ids, time.Now(), "alice@example.com/a", "bob@example.com", "TWO")
	stream := archive.Stream("alice@example.com", "bob@example.com")
	if _, err := s.Append(ctx, stream, eventstore.NoStream, a, b); err != nil {
		t.Fatal(err)
	}
	kept, _ := raw(t, path).ReadStream(ctx, stream, 1, 10)
	var d0, d1 map[string]json.RawMessage
	json.Unmarshal(kept[0].Data, &d0)
	json.Unmarshal(kept[1].Data, &d1)
	d1["stanza"] = d0["stanza"]
	moved := kept[1]
	moved.Data, _ = json.Marshal(d1)
	fresh := sealing.New(sqlKeys(t, path, kek), true)
	if err := fresh.Open(ctx, []event.Envelope{moved}); err == nil {
		t.Fatal("a box moved to another event opened")
	}
}

// sqlKeys opens the keys kept in the store file at path, under kek.
func sqlKeys(t *testing.T, path string, kek []byte) *sealing.SQLKeys {
	t.Helper()
	db, err := sqlite.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	k, err := sealing.OpenSQLKeys(context.Background(), db, kek)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
