package sealing_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"annals.im/annals/adapters/sealing"
)

// TestKeys runs the same behaviour on both keepers of keys: SQLKeys in
// the embedded store's file, KVKeys in a cluster's bucket.
func TestKeys(t *testing.T) {
	t.Run("sql", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "annals.db")
		testKeys(t, func(t *testing.T, kek []byte) sealing.Keys { return sqlKeys(t, path, kek) })
	})
	t.Run("kv", func(t *testing.T) {
		b, _ := bucket(t)
		testKeys(t, func(t *testing.T, kek []byte) sealing.Keys { return kvKeys(t, b, kek, sealing.KVOptions{}) })
	})
}

// endOf is when UTC day d ends.
func endOf(d int64) time.Time { return time.Unix((d+1)*86400, 0) }

// testKeys: open returns Keys over one storage, under kek.
func testKeys(t *testing.T, open func(t *testing.T, kek []byte) sealing.Keys) {
	ctx := context.Background()
	k := open(t, kek)
	const d = 20000 // a UTC day: 2024-10-04
	const alice, bob = "alice@example.com", "bob@example.com"
	create := func(owner string, kind sealing.Kind, period int64) sealing.Key {
		t.Helper()
		key, err := k.Create(ctx, owner, kind, period)
		if err != nil {
			t.Fatal(err)
		}
		if key.ID == "" || len(key.Secret) != 32 || key.Owner != owner || key.Kind != kind || key.Period != period {
			t.Fatalf("Create(%s, %s, %d) = %+v", owner, kind, period, key)
		}
		return key
	}
	find := func(owner string, kind sealing.Kind, period int64, want *sealing.Key) {
		t.Helper()
		got, ok, err := k.Find(ctx, owner, kind, period)
		switch {
		case err != nil:
			t.Fatal(err)
		case want == nil && ok:
			t.Fatalf("Find(%s, %s, %d) = %s, want none", owner, kind, period, got.ID)
		case want != nil && (!ok || got.ID != want.ID || !bytes.Equal(got.Secret, want.Secret)):
			t.Fatalf("Find(%s, %s, %d) = %s (found %v), want %s", owner, kind, period, got.ID, ok, want.ID)
		}
	}
	get := func(want sealing.Key, kept bool) {
		t.Helper()
		got, ok, err := k.Get(ctx, want.ID)
		switch {
		case err != nil:
			t.Fatal(err)
		case ok != kept:
			t.Fatalf("Get(%s): found %v, want %v", want.ID, ok, kept)
		case kept && (got.ID != want.ID || got.Owner != want.Owner || got.Kind != want.Kind || got.Period != want.Period || !bytes.Equal(got.Secret, want.Secret)):
			t.Fatalf("Get(%s) = %+v, want %+v", want.ID, got, want)
		}
	}
	owned := func(owner string, max int, want ...sealing.Key) {
		t.Helper()
		got, err := k.Owned(ctx, owner, max)
		if err != nil {
			t.Fatal(err)
		}
		if ids := idsOf(want); !slices.Equal(got, ids) {
			t.Fatalf("Owned(%s, %d) = %v, want %v", owner, max, got, ids)
		}
	}
	ended := func(at time.Time, max int, want ...sealing.Key) []string {
		t.Helper()
		got, err := k.Ended(ctx, at, max)
		if err != nil {
			t.Fatal(err)
		}
		ids := idsOf(want)
		if max > 0 {
			for _, id := range got {
				if !slices.Contains(ids, id) {
					t.Fatalf("Ended(%v, %d) = %v, not among %v", at, max, got, ids)
				}
			}
			if len(got) != min(max, len(ids)) {
				t.Fatalf("Ended(%v, %d) = %v, want %d of %v", at, max, got, min(max, len(ids)), ids)
			}
			return got
		}
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Fatalf("Ended(%v) = %v, want %v", at, got, ids)
		}
		return got
	}

	find(alice, sealing.Message, d, nil)
	a1 := create(alice, sealing.Message, d)
	find(alice, sealing.Message, d, &a1)
	get(a1, true)
	a2 := create(alice, sealing.Message, d) // as after an erasure: the newest seals
	find(alice, sealing.Message, d, &a2)
	as := create(alice, sealing.State, 0)
	a3 := create(alice, sealing.Message, d+1)
	b1 := create(bob, sealing.Message, d)
	find(alice, sealing.Message, d+2, nil)
	find(alice, sealing.State, 0, &as)
	find(bob, sealing.State, 0, nil)
	find("carol@example.com", sealing.Message, d, nil)
	get(sealing.Key{ID: "0123456789abcdef01234567"}, false)

	owned(alice, 0, a1, a2, as, a3)
	owned(alice, 2, a1, a2)
	owned(bob, 0, b1)
	owned("carol@example.com", 0)

	ended(endOf(d).Add(-time.Nanosecond), 0)
	ended(endOf(d), 0, a1, a2, b1)
	ended(endOf(d+1), 0, a1, a2, b1, a3)
	ended(endOf(d+1), 2, a1, a2, b1) // the older day first

	// A key named twice, or unknown, is no error.
	if err := k.Destroy(ctx, []string{a2.ID, "0123456789abcdef01234567", a2.ID}); err != nil {
		t.Fatal(err)
	}
	get(a2, false)
	find(alice, sealing.Message, d, &a1)
	owned(alice, 0, a1, as, a3)
	ended(endOf(d), 0, a1, b1)

	// Another server secret opens nothing: the storage alone is not enough.
	other := open(t, bytes.Repeat([]byte{8}, 32))
	if _, _, err := other.Get(ctx, a1.ID); err == nil {
		t.Fatal("a key opened under another key-encryption key")
	}
	if _, _, err := other.Find(ctx, alice, sealing.State, 0); err == nil {
		t.Fatal("a key was found under another key-encryption key")
	}

	// Erasing alice: all her keys go, bob's stay.
	ids, err := k.Owned(ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Destroy(ctx, ids); err != nil {
		t.Fatal(err)
	}
	owned(alice, 0)
	find(alice, sealing.State, 0, nil)
	find(alice, sealing.Message, d, nil)
	get(as, false)
	ended(endOf(d+1), 0, b1)
	find(bob, sealing.Message, d, &b1)
	if err := k.Destroy(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// New keys after the erasure are kept and found as before.
	a4 := create(alice, sealing.Message, d)
	find(alice, sealing.Message, d, &a4)
	owned(alice, 0, a4)
}

func idsOf(keys []sealing.Key) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}
