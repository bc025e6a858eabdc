package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/pep"
	"annals.im/annals/eventstore/sqlite"
)

// Bookmark passwords go beside the log, never into it, and leave with
// their item: replaced, retracted or pushed out of the node.
func TestPEPPasswordsBesideTheLog(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "annals.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	db, err := sqlite.OpenDB(store.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	creds, err := credentials.Open(ctx, db, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	pwds, err := secrets.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	accounts := newAccounts(store, creds)
	const acct, bm = "juliet@example.com", "urn:xmpp:bookmarks:1"
	if err := accounts.Register(ctx, acct, "balcony"); err != nil {
		t.Fatal(err)
	}
	p := newPEP(accounts, pwds)
	two := &pep.Config{AccessModel: pep.Whitelist, MaxItems: 2}
	publish := func(id string, passwords ...string) {
		t.Helper()
		it := pep.Item{ID: id, Payload: "<conference xmlns='" + bm + "'><password/></conference>"}
		if err := p.Do(ctx, acct, pep.Publish{Node: bm, Item: it, Options: two, Passwords: passwords}); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() map[string][]string {
		t.Helper()
		got, err := p.Passwords(ctx, acct, bm)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	publish("hall@conf", "first-secret")
	publish("hall@conf", "second-secret")
	publish("crypt@conf", "tomb-secret")
	if got := kept(); !reflect.DeepEqual(got, map[string][]string{"hall@conf": {"second-secret"}, "crypt@conf": {"tomb-secret"}}) {
		t.Fatalf("kept %v", got)
	}
	n, err := p.Node(ctx, acct, bm)
	if it, _ := n.Item("hall@conf"); err != nil || !it.HasPassword {
		t.Fatalf("the item does not say it has a password: %+v %v", it, err)
	}
	publish("garden@conf") // pushes hall@conf out (max_items 2)
	publish("crypt@conf")  // no password any more
	if got := kept(); len(got) != 0 {
		t.Fatalf("passwords of items gone or without one: %v", got)
	}
	publish("vault@conf", "vault-secret")
	if err := p.Do(ctx, acct, pep.Retract{Node: bm, ID: "vault@conf"}); err != nil {
		t.Fatal(err)
	}
	if got := kept(); len(got) != 0 {
		t.Fatalf("a retracted item's password: %v", got)
	}
	evs, err := store.ReadStream(ctx, "account-"+acct, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.Contains(string(e.Data), "-secret") {
			t.Fatalf("a password in the log: %s %s", e.Type, e.Data)
		}
	}
}
