package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"annals.im/annals/adapters/beside"
	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/jetstream"
)

func bucket(t *testing.T) *jetstream.Bucket {
	t.Helper()
	s := connect(t, jetstream.Options{Prefix: "kv" + unique(t), Stream: "KV" + unique(t)})
	b, err := s.Bucket(context.Background(), "beside-"+unique(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The compare-and-set a cluster's nodes rely on: one winner per revision,
// values under any key, deletes that leave nothing.
func TestBucket(t *testing.T) {
	ctx := context.Background()
	b := bucket(t)
	var _ beside.KV = b
	key := "credentials/ｊｕｌｉｅｔ@capulet.example/with spaces.and*wildcards>"
	if v, rev, err := b.Get(ctx, key); err != nil || rev != 0 || v != nil {
		t.Fatalf("absent key: %q %d %v", v, rev, err)
	}
	rev, ok, err := b.Set(ctx, key, []byte("one"), 0)
	if err != nil || !ok {
		t.Fatalf("create: %d %v %v", rev, ok, err)
	}
	if _, ok, err := b.Set(ctx, key, []byte("again"), 0); err != nil || ok {
		t.Fatalf("second create: ok=%v err=%v, want refused", ok, err)
	}
	if _, ok, err := b.Set(ctx, key, []byte("stale"), rev+7); err != nil || ok {
		t.Fatalf("update at a wrong revision: ok=%v err=%v, want refused", ok, err)
	}
	rev2, ok, err := b.Set(ctx, key, []byte("two"), rev)
	if err != nil || !ok || rev2 <= rev {
		t.Fatalf("update: %d %v %v", rev2, ok, err)
	}
	if v, got, err := b.Get(ctx, key); err != nil || got != rev2 || string(v) != "two" {
		t.Fatalf("read back: %q %d %v", v, got, err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if v, rev, err := b.Get(ctx, key); err != nil || rev != 0 || v != nil {
		t.Fatalf("deleted key: %q %d %v", v, rev, err)
	}
	if err := b.Delete(ctx, "never-set"); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
}

// Two nodes starting at once keep one server secret; concurrent updates of
// one account's value lose none.
func TestBucketKeepAndUpdate(t *testing.T) {
	ctx := context.Background()
	b := bucket(t)
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			v, err := beside.Keep(ctx, b, "server-secret", func() ([]byte, error) { return []byte{byte(i)}, nil })
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for _, v := range got[1:] {
		if !bytes.Equal(v, got[0]) || len(v) != 1 {
			t.Fatalf("nodes keep different secrets: %v", got)
		}
	}
	for i := range 8 {
		wg.Go(func() {
			err := beside.Update(ctx, b, "counter", func(old []byte) ([]byte, error) {
				return append(bytes.Clone(old), byte(i)), nil
			})
			if err != nil && !errors.Is(err, beside.ErrBusy) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if v, _, err := b.Get(ctx, "counter"); err != nil || len(v) != 8 {
		t.Fatalf("after 8 concurrent updates: %v %v, want 8 bytes", v, err)
	}
}

// What serve keeps in the bucket instead of SQL tables reads back the same.
func TestCredentialsAndSecretsOnBucket(t *testing.T) {
	ctx := context.Background()
	b := bucket(t)
	creds := credentials.OnKV(b)
	c, err := credentials.Derive("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Put(ctx, "Juliet@Capulet.example", c); err != nil {
		t.Fatal(err)
	}
	got, err := creds.Get(ctx, "juliet@capulet.example")
	if err != nil || !got.Verify("correct horse") || got.Verify("wrong") {
		t.Fatalf("credentials read back: %v", err)
	}
	if err := creds.Delete(ctx, "JULIET@capulet.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.Get(ctx, "juliet@capulet.example"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("deleted credentials: %v, want ErrNotFound", err)
	}

	pw := secrets.OnKV(b)
	const acct, node = "romeo@montague.example", "urn:xmpp:bookmarks:1"
	if err := pw.Put(ctx, acct, node, "room1@conference.example", []string{"", "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if err := pw.Put(ctx, acct, node, "room2@conference.example", []string{"other"}); err != nil {
		t.Fatal(err)
	}
	if err := pw.Put(ctx, acct, node, "room3@conference.example", []string{""}); err != nil {
		t.Fatal(err)
	}
	items, err := pw.Node(ctx, acct, node)
	if err != nil || len(items) != 2 || items["room1@conference.example"][1] != "s3cret" {
		t.Fatalf("node read back: %v %v", items, err)
	}
	if err := pw.Delete(ctx, acct, node, "room1@conference.example"); err != nil {
		t.Fatal(err)
	}
	if items, _ := pw.Node(ctx, acct, node); len(items) != 1 {
		t.Fatalf("after one delete: %v", items)
	}
	if err := pw.DeleteAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if items, err := pw.Node(ctx, acct, node); err != nil || len(items) != 0 {
		t.Fatalf("after the account's deletion: %v %v", items, err)
	}
	if _, rev, _ := b.Get(ctx, "pep-passwords/"+acct); rev != 0 {
		t.Fatal("the account's value outlives its deletion")
	}
}

// Head is the last event's position, whatever the ID messages after it.
func TestHead(t *testing.T) {
	ctx := context.Background()
	s := connect(t, jetstream.Options{Prefix: "head" + unique(t), Stream: "HEAD" + unique(t)})
	if p, err := s.Head(ctx); err != nil || !p.IsZero() {
		t.Fatalf("empty log: %v %v", p, err)
	}
	var last event.Position
	for i := range 3 {
		got, err := s.Append(ctx, "s"+unique(t), eventstore.NoStream, proposed(t, i+1)...)
		if err != nil {
			t.Fatal(err)
		}
		last = got[len(got)-1].Position
	}
	if p, err := s.Head(ctx); err != nil || p != last {
		t.Fatalf("head %v %v, want %v", p, err, last)
	}
}
