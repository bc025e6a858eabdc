package accounts_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
)

// The block list lives in the account's stream: each change is an event
// with the caller's cause, what changes nothing appends nothing, a fresh
// service over the same log folds the same list, and an account
// registered under a deleted one's name starts with none.
func TestBlocklist(t *testing.T) {
	t.Parallel()
	env := apptest.Open(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	const juliet, romeo, tybalt = "juliet@example.com", "romeo@example.com", "tybalt@example.com"
	ctx := event.WithCause(context.Background(), "c2s:s1/block1")
	if err := a.Register(ctx, juliet, "balcony"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name          string
		cmd           blocking.Command
		err           error
		before, after []string
		events        int // in the stream afterwards
		lastType      event.Type
	}{
		{"block", blocking.Block{JIDs: []string{romeo, tybalt}}, nil, nil, []string{romeo, tybalt}, 2, blocking.TypeBlocked},
		{"block again", blocking.Block{JIDs: []string{romeo}}, nil, []string{romeo, tybalt}, []string{romeo, tybalt}, 2, blocking.TypeBlocked},
		{"past the limit", blocking.Block{JIDs: []string{"nurse@example.com"}, Limits: blocking.Limits{MaxJIDs: 2}}, blocking.ErrFull,
			[]string{romeo, tybalt}, []string{romeo, tybalt}, 2, blocking.TypeBlocked},
		{"unblock", blocking.Unblock{JIDs: []string{romeo}}, nil, []string{romeo, tybalt}, []string{tybalt}, 3, blocking.TypeUnblocked},
	}
	for _, s := range steps {
		before, after, err := a.Block(ctx, juliet, s.cmd)
		if !errors.Is(err, s.err) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
		}
		if err == nil && (!slices.Equal(before.JIDs, s.before) || !slices.Equal(after.JIDs, s.after)) {
			t.Fatalf("%s: before %q after %q, want %q and %q", s.name, before.JIDs, after.JIDs, s.before, s.after)
		}
		evs := env.Events(t, account.StreamOf(juliet))
		if last := evs[len(evs)-1]; len(evs) != s.events || last.Type != s.lastType || last.Cause != "c2s:s1/block1" {
			t.Fatalf("%s: %d events, the last %s caused by %q", s.name, len(evs), last.Type, last.Cause)
		}
	}
	if _, _, err := a.Block(ctx, "nurse@example.com", blocking.Block{JIDs: []string{romeo}}); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("a block by nobody: %v", err)
	}
	again := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	if l, err := again.Blocklist(ctx, juliet); err != nil || !slices.Equal(l.JIDs, []string{tybalt}) || l.Version != 3 {
		t.Fatalf("folded again from the log: %+v %v", l, err)
	}
	if err := a.Remove(ctx, juliet); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx, juliet, "tomb"); err != nil {
		t.Fatal(err)
	}
	if l, err := a.Blocklist(ctx, juliet); err != nil || len(l.JIDs) != 0 || l.Blocks(jid.MustParse(tybalt)) {
		t.Fatalf("a new incarnation inherits the old one's block list: %+v %v", l, err)
	}
}
