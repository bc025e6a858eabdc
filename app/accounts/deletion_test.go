package accounts_test

import (
	"context"
	"testing"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/app/rooms"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/roster"
)

const (
	juliet = "juliet@example.com"
	romeo  = "romeo@example.com"
	hall   = "hall@conference.example.com"
	crypt  = "crypt@conference.example.com"
)

// world is two accounts subscribed to each other, both in the hall, which
// juliet owns; juliet has a bookmark password and a contact of her own.
func world(t *testing.T) (*apptest.Env, *accounts.Service, *rooms.Service) {
	t.Helper()
	ctx := context.Background()
	env := apptest.Open(t)
	rms := rooms.New(env.Store, env.IDs, env.DB, "conference.example.com")
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Rooms: rms, Secrets: env.Secrets})
	for _, u := range []string{juliet, romeo} {
		if err := a.Register(ctx, u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct {
		acct, contact string
		stanza        roster.Stanza
	}{
		{romeo, juliet, roster.OutSubscribe}, {juliet, romeo, roster.InSubscribe},
		{juliet, romeo, roster.OutSubscribed}, {romeo, juliet, roster.InSubscribed},
	} {
		if _, _, err := a.Do(ctx, s.acct, roster.Presence{Contact: s.contact, Stanza: s.stanza}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.Do(ctx, juliet, roster.SetItem{Contact: "nurse@example.com"}, "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Secrets.Put(ctx, juliet, "urn:xmpp:bookmarks:1", hall, []string{"hall-secret"}); err != nil {
		t.Fatal(err)
	}
	join(t, rms, hall, juliet)
	join(t, rms, hall, romeo)
	return env, a, rms
}

func join(t *testing.T, rms *rooms.Service, r, acct string) {
	t.Helper()
	_, _, err := rms.Do(context.Background(), r, func(room.State) any {
		return room.Join{Account: acct, Nick: acct[:5], Create: true}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Remove takes the account out of its rooms and its contacts' rosters,
// and deletes its keys and bookmark passwords; the next account of the
// name starts with nothing. Events appended on the account's behalf say
// "account-deleted" when the caller gave no cause.
func TestRemoveForgets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, a, rms := world(t)
	env.CatchUp(t) // as serve's runner does: Remove finds the hall in the read model
	if err := a.Remove(ctx, juliet); err != nil {
		t.Fatal(err)
	}
	h, err := rms.Get(ctx, hall)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := h.Occupants[juliet]; in || h.Affiliation(juliet) != room.None {
		t.Fatalf("juliet is still in the hall: %+v", h)
	}
	if _, in := h.Occupants[romeo]; !in {
		t.Fatalf("romeo left the hall with her: %+v", h)
	}
	r, err := a.Roster(ctx, romeo)
	if err != nil {
		t.Fatal(err)
	}
	if it := r.Items[juliet]; it.Subscription != roster.None {
		t.Fatalf("romeo still has a subscription to juliet: %+v", it)
	}
	for _, stream := range []string{room.Stream(hall), account.StreamOf(romeo)} {
		if e := env.Last(t, stream); e.Cause != "account-deleted" {
			t.Fatalf("%s: the last event (%s) is caused by %q", stream, e.Type, e.Cause)
		}
	}
	if got, err := env.Secrets.Node(ctx, juliet, "urn:xmpp:bookmarks:1"); err != nil || len(got) != 0 {
		t.Fatalf("bookmark passwords of a deleted account: %v %v", got, err)
	}
	if _, err := env.Creds.Get(ctx, juliet); err == nil {
		t.Fatal("keys of a deleted account")
	}
	if err := a.Register(ctx, juliet, "again"); err != nil {
		t.Fatal(err)
	}
	st, err := a.Get(ctx, juliet)
	if err != nil || !st.Account.Exists || len(st.Roster.Items) != 0 || len(st.PEP.Nodes) != 0 {
		t.Fatalf("the new juliet inherits the old one's state: %+v %v", st, err)
	}
}

// SweepDeleted takes a deleted account out of a room its still-live
// session joined after Remove ran, and leaves an account registered again
// where it is.
func TestSweepDeleted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		registered bool // juliet exists again when the sweep runs
		wantInRoom bool
	}{
		{"deleted", false, false},
		{"registered again", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env, a, rms := world(t)
			env.CatchUp(t)
			if err := a.Remove(ctx, juliet); err != nil {
				t.Fatal(err)
			}
			if c.registered {
				if err := a.Register(ctx, juliet, "again"); err != nil {
					t.Fatal(err)
				}
			}
			join(t, rms, crypt, romeo)
			join(t, rms, crypt, juliet) // the session that was still there
			env.CatchUp(t)
			if err := a.SweepDeleted(event.WithCause(ctx, "sweep-7"), juliet); err != nil {
				t.Fatal(err)
			}
			st, err := rms.Get(ctx, crypt)
			if err != nil {
				t.Fatal(err)
			}
			if _, in := st.Occupants[juliet]; in != c.wantInRoom {
				t.Fatalf("juliet in the crypt: %v, want %v", in, c.wantInRoom)
			}
			if e := env.Last(t, room.Stream(crypt)); !c.wantInRoom && e.Cause != "sweep-7" {
				t.Fatalf("the sweep's event (%s) is caused by %q", e.Type, e.Cause)
			}
		})
	}
}

// contentKeys are an account's content keys in memory.
type contentKeys struct{ destroyed []string }

func (k *contentKeys) Owned(_ context.Context, owner string, _ int) ([]string, error) {
	return []string{owner + "-k1"}, nil
}

func (k *contentKeys) Destroy(_ context.Context, ids []string) error {
	k.destroyed = append(k.destroyed, ids...)
	return nil
}

// EraseContentPasswords: EraseContent names the account's keys in the log and destroys them,
// and deletes the bookmark passwords kept beside the log (content of the
// account's, in the clear): another account's stay.
func TestEraseContentPasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, a, _ := world(t)
	if err := env.Secrets.Put(ctx, romeo, "urn:xmpp:bookmarks:1", hall, []string{"romeo-secret"}); err != nil {
		t.Fatal(err)
	}
	keys := &contentKeys{}
	if n, err := a.EraseContent(ctx, juliet, "request 1", keys); err != nil || n != 1 || len(keys.destroyed) != 1 {
		t.Fatalf("EraseContent: %d %v, destroyed %v", n, err, keys.destroyed)
	}
	var d account.ContentErased
	if e := env.Last(t, account.StreamOf(juliet)); e.Type != account.TypeContentErased || e.Decode(account.Schema, &d) != nil ||
		len(d.Keys) != 1 || d.Keys[0] != juliet+"-k1" || d.Reason != "request 1" {
		t.Fatalf("the erasure's event: %s %+v", e.Type, d)
	}
	if got, err := env.Secrets.Node(ctx, juliet, "urn:xmpp:bookmarks:1"); err != nil || len(got) != 0 {
		t.Fatalf("bookmark passwords of an erased account: %v %v", got, err)
	}
	if got, err := env.Secrets.Node(ctx, romeo, "urn:xmpp:bookmarks:1"); err != nil || len(got[hall]) != 1 {
		t.Fatalf("another account's bookmark passwords after the erasure: %v %v", got, err)
	}
}
