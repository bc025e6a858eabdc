package pep_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/app/pep"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	domain "annals.im/annals/domain/pep"
)

const bm = "urn:xmpp:bookmarks:1"

// open returns a PEP service over a fresh store, with juliet registered.
func open(t *testing.T) (*apptest.Env, *pep.Service) {
	t.Helper()
	env := apptest.Open(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	if err := a.Register(context.Background(), "juliet@example.com", "balcony"); err != nil {
		t.Fatal(err)
	}
	return env, pep.New(a, env.Secrets, env.IDs)
}

func bookmark(id string, passwords ...string) domain.Publish {
	return named(id, "", passwords...)
}

// named is a publication of item id whose payload carries name, so that
// a test can tell which publication an item is of.
func named(id, name string, passwords ...string) domain.Publish {
	it := domain.Item{ID: id, Payload: "<conference xmlns='" + bm + "' name='" + name + "'><password/></conference>"}
	return domain.Publish{Node: bm, Item: it, Options: &domain.Config{AccessModel: domain.Whitelist, MaxItems: 2}, Passwords: passwords}
}

// Bookmark passwords go beside the log, never into it, and leave with
// their item: replaced, retracted or pushed out of the node.
func TestPasswordsBesideTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, p := open(t)
	const acct = "juliet@example.com"
	publish := func(id string, passwords ...string) {
		t.Helper()
		if err := p.Do(ctx, acct, bookmark(id, passwords...)); err != nil {
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
	if err := p.Do(ctx, acct, domain.Retract{Node: bm, ID: "vault@conf"}); err != nil {
		t.Fatal(err)
	}
	if got := kept(); len(got) != 0 {
		t.Fatalf("a retracted item's password: %v", got)
	}
	for _, e := range env.Events(t, account.StreamOf(acct)) {
		if strings.Contains(string(e.Data), "-secret") {
			t.Fatalf("a password in the log: %s %s", e.Type, e.Data)
		}
	}
}

// Each command's events carry the context's cause, or "c2s"; a refused
// command appends nothing and keeps no password.
func TestDo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		acct    string
		cause   string // given in the context; "" none
		cmd     any
		wantErr error
		want    string // the last event's cause
	}{
		{"publish, no cause given", "juliet@example.com", "", bookmark("a@conf", "pw-a"), nil, "c2s"},
		{"publish for a stanza", "juliet@example.com", "pub-1", bookmark("b@conf", "pw-b"), nil, "pub-1"},
		{"retract for a stanza", "juliet@example.com", "retract-9", domain.Retract{Node: bm, ID: "b@conf"}, nil, "retract-9"},
		{"no such account", "nurse@example.com", "pub-2", bookmark("c@conf", "pw-c"), account.ErrNotFound, ""},
		{"no such item", "juliet@example.com", "retract-10", domain.Retract{Node: bm, ID: "nothing@conf"}, domain.ErrItemNotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env, p := open(t)
			ctx := event.WithCause(context.Background(), c.cause)
			if _, ok := c.cmd.(domain.Retract); ok {
				if err := p.Do(context.Background(), "juliet@example.com", bookmark("b@conf", "pw-b")); err != nil {
					t.Fatal(err)
				}
			}
			before := len(env.Events(t, account.StreamOf(c.acct)))
			keptBefore, err := p.Passwords(ctx, c.acct, bm)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Do(ctx, c.acct, c.cmd)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Do: %v, want %v", err, c.wantErr)
			}
			evs := env.Events(t, account.StreamOf(c.acct))
			if c.wantErr != nil {
				if len(evs) != before {
					t.Fatalf("a refused command appended %d events", len(evs)-before)
				}
				if got, err := p.Passwords(ctx, c.acct, bm); err != nil || !reflect.DeepEqual(got, keptBefore) {
					t.Fatalf("a refused command changed the passwords kept: %v, were %v (%v)", got, keptBefore, err)
				}
				return
			}
			if len(evs) == before || evs[len(evs)-1].Cause != c.want {
				t.Fatalf("%d new events, last cause %q; want %q", len(evs)-before, evs[len(evs)-1].Cause, c.want)
			}
		})
	}
}

// Publications of one account are serialized: whatever their order, the
// password kept is that of the publication the node holds. Unserialized,
// one publication's event and another's password would be kept
// (with the lock taken out, 20 runs in 20 failed).
func TestConcurrentPublications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, p := open(t)
	const acct = "juliet@example.com"
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('a' + i))
			if err := p.Do(ctx, acct, named("hall@conf", name, "pw-"+name)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n, err := p.Node(ctx, acct, bm)
	if err != nil {
		t.Fatal(err)
	}
	it, ok := n.Item("hall@conf")
	got, err := p.Passwords(ctx, acct, bm)
	if err != nil || !ok || !it.HasPassword || len(got["hall@conf"]) != 1 ||
		"pw-"+strings.Split(strings.Split(it.Payload, "name='")[1], "'")[0] != got["hall@conf"][0] {
		t.Fatalf("item %+v (%v), passwords %v (%v): not of one publication", it, ok, got, err)
	}
}
