package vcard_test

import (
	"context"
	"errors"
	"testing"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/app/vcard"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	domain "annals.im/annals/domain/vcard"
)

const (
	png1    = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	pngSHA1 = "b2bbe763c7e1828c750d53f78550709a6fea19be"
	withPNG = "<vCard xmlns='vcard-temp'><FN>Juliet</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + png1 + "</BINVAL></PHOTO></vCard>"
)

// A vCard set is an event in the account's stream with the stanza's
// cause, read back with its avatar's hash by a service that folds the
// stream afresh (as a restarted server would); setting it again appends
// nothing; an account that does not exist keeps none; a refused vCard
// appends nothing; an account registered again under the name starts
// without it.
func TestSetVCard(t *testing.T) {
	t.Parallel()
	env := apptest.Open(t)
	ctx := context.Background()
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{})
	const acct = "juliet@example.com"
	if err := a.Register(ctx, acct, "balcony"); err != nil {
		t.Fatal(err)
	}
	v := vcard.New(a, env.IDs)
	if st, exists, err := v.VCard(ctx, acct); err != nil || !exists || st.Set {
		t.Fatalf("before any vCard: %+v %v %v", st, exists, err)
	}
	before, after, err := v.SetVCard(event.WithCause(ctx, "vc1"), acct, domain.Set{XML: withPNG, MaxBytes: 4096})
	if a, _ := after.Card.Avatar(); err != nil || before.Set || a != pngSHA1 {
		t.Fatalf("set: %+v -> %+v, %v", before, after, err)
	}
	evs := env.Events(t, account.StreamOf(acct))
	if last := evs[len(evs)-1]; last.Type != domain.TypeSet || last.Cause != "vc1" {
		t.Fatalf("last event %s caused by %q", last.Type, last.Cause)
	}
	if _, _, err := v.SetVCard(ctx, acct, domain.Set{XML: withPNG}); err != nil || len(env.Events(t, account.StreamOf(acct))) != len(evs) {
		t.Fatalf("the same vCard again: %v, %d events (were %d)", err, len(env.Events(t, account.StreamOf(acct))), len(evs))
	}
	if _, _, err := v.SetVCard(ctx, acct, domain.Set{XML: withPNG, MaxBytes: 100}); !errors.Is(err, domain.ErrTooBig) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, _, err := v.SetVCard(ctx, "nurse@example.com", domain.Set{XML: withPNG}); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("no such account: %v", err)
	}
	if got := env.Events(t, account.StreamOf("nurse@example.com")); len(got) != 0 {
		t.Fatalf("events for an account that does not exist: %d", len(got))
	}
	fresh := vcard.New(accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{}), env.IDs)
	st, _, err := fresh.VCard(ctx, acct)
	if a, _ := st.Card.Avatar(); err != nil || st.Card.XML != after.Card.XML || a != pngSHA1 {
		t.Fatalf("folded again: %+v %v", st, err)
	}
	// A new account under a deleted one's name starts without its vCard.
	if err := a.Remove(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if st, exists, err := v.VCard(ctx, acct); err != nil || exists {
		t.Fatalf("deleted: %+v %v %v", st, exists, err)
	}
	if err := a.Register(ctx, acct, "again"); err != nil {
		t.Fatal(err)
	}
	if st, exists, err := v.VCard(ctx, acct); err != nil || !exists || st.Set {
		t.Fatalf("registered again: %+v %v %v", st, exists, err)
	}
}
