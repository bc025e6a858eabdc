package accounts_test

import (
	"context"
	"errors"
	"testing"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
)

// The lifecycle, step by step on one store: what each call returns, which
// event it appends with which cause, and which password logs in after.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	env := apptest.Open(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{Secrets: env.Secrets})
	const juliet = "juliet@example.com"
	steps := []struct {
		name     string
		cause    string // given in the context; "" none
		do       func(ctx context.Context) error
		wantErr  error
		wantType event.Type // of the stream's last event afterwards
		want     string     // its cause
		password string     // that logs in afterwards; "" none
	}{
		{"register", "",
			func(ctx context.Context) error { return a.Register(ctx, juliet, "balcony") },
			nil, account.TypeCreated, "register", "balcony"},
		{"register again", "cli:user add",
			func(ctx context.Context) error { return a.Register(ctx, juliet, "other") },
			account.ErrExists, account.TypeCreated, "register", "balcony"},
		{"register a full JID", "",
			func(ctx context.Context) error { return a.Register(ctx, juliet+"/phone", "x") },
			account.ErrJID, account.TypeCreated, "register", "balcony"},
		{"password by the operator", "",
			func(ctx context.Context) error { return a.SetPassword(ctx, juliet, "nightingale", "") },
			nil, account.TypePasswordChanged, "operator", "nightingale"},
		{"password by a command", "cli:user passwd",
			func(ctx context.Context) error { return a.SetPassword(ctx, juliet, "lark", "") },
			nil, account.TypePasswordChanged, "cli:user passwd", "lark"},
		{"password by a session, whatever the stanza", "iq-42",
			func(ctx context.Context) error { return a.SetPassword(ctx, juliet, "rose", "sess-1") },
			nil, account.TypePasswordChanged, "session:sess-1", "rose"},
		{"password of nobody", "",
			func(ctx context.Context) error { return a.SetPassword(ctx, "nurse@example.com", "x", "") },
			account.ErrNotFound, account.TypePasswordChanged, "session:sess-1", "rose"},
		{"remove nobody", "",
			func(ctx context.Context) error { return a.Remove(ctx, "nurse@example.com") },
			account.ErrNotFound, account.TypePasswordChanged, "session:sess-1", "rose"},
		{"remove", "cli:user del",
			func(ctx context.Context) error { return a.Remove(ctx, juliet) },
			nil, account.TypeDeleted, "cli:user del", ""},
		{"register in-band", "",
			func(ctx context.Context) error { return a.Register(ctx, juliet, "tomb") },
			nil, account.TypeCreated, "register", "tomb"},
		{"remove in-band", "",
			func(ctx context.Context) error { return a.Remove(ctx, juliet) },
			nil, account.TypeDeleted, "remove", ""},
	}
	for _, s := range steps {
		ctx := event.WithCause(context.Background(), s.cause)
		if err := s.do(ctx); !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.wantErr)
		}
		if e := env.Last(t, account.StreamOf(juliet)); e.Type != s.wantType || e.Cause != s.want {
			t.Fatalf("%s: last event %s caused by %q, want %s by %q", s.name, e.Type, e.Cause, s.wantType, s.want)
		}
		c, err := env.Creds.Get(context.Background(), juliet)
		switch {
		case s.password == "" && err == nil:
			t.Fatalf("%s: keys are kept for a deleted account", s.name)
		case s.password != "" && (err != nil || !c.Verify(s.password)):
			t.Fatalf("%s: %q does not log in (%v)", s.name, s.password, err)
		}
	}
}

func TestKeptSession(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ   event.Type
		cause string
		want  string
	}{
		{account.TypePasswordChanged, "session:sess-1", "sess-1"},
		{account.TypePasswordChanged, "operator", ""},
		{account.TypePasswordChanged, "cli:user passwd", ""},
		{account.TypePasswordChanged, "sess-1", ""}, // not made by a session, even if it spells one
		{account.TypePasswordChanged, "session:", ""},
		{account.TypeDeleted, "session:sess-1", ""}, // a deletion keeps nobody
	}
	for _, c := range cases {
		if got := accounts.KeptSession(event.Envelope{Type: c.typ, Cause: c.cause}); got != c.want {
			t.Errorf("%s caused by %q keeps %q, want %q", c.typ, c.cause, got, c.want)
		}
	}
}

// The roster port takes its cause as a parameter (the c2s adapter passes
// the stanza id); an account that does not exist keeps no roster.
func TestRoster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := apptest.Open(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{})
	if err := a.Register(ctx, "romeo@example.com", "dagger"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, acct string
		cmd        roster.Command
		wantErr    error
		wantItems  int
		wantEvents int // in the account's stream afterwards
	}{
		{"add a contact", "romeo@example.com", roster.SetItem{Contact: "juliet@example.com", Name: "J"}, nil, 1, 2},
		{"ask for her presence", "romeo@example.com", roster.Presence{Contact: "juliet@example.com", Stanza: roster.OutSubscribe}, nil, 1, 3},
		{"oneself", "romeo@example.com", roster.SetItem{Contact: "romeo@example.com"}, roster.ErrSelf, 1, 3},
		{"a roster full", "romeo@example.com", roster.SetItem{Contact: "tybalt@example.com", MaxItems: 1}, roster.ErrFull, 1, 3},
		{"nobody's roster", "nurse@example.com", roster.SetItem{Contact: "juliet@example.com"}, nil, 0, 0},
	}
	for _, c := range cases {
		_, st, err := a.Do(ctx, c.acct, c.cmd, "stanza-"+c.name)
		if !errors.Is(err, c.wantErr) || len(st.Items) != c.wantItems {
			t.Fatalf("%s: %v and %d items, want %v and %d", c.name, err, len(st.Items), c.wantErr, c.wantItems)
		}
		evs := env.Events(t, account.StreamOf(c.acct))
		if len(evs) != c.wantEvents {
			t.Fatalf("%s: %d events, want %d", c.name, len(evs), c.wantEvents)
		}
		if c.wantErr == nil && c.wantEvents > 0 {
			if got := evs[len(evs)-1].Cause; got != "stanza-"+c.name {
				t.Fatalf("%s: caused by %q", c.name, got)
			}
		}
		if r, err := a.Roster(ctx, c.acct); err != nil || len(r.Items) != c.wantItems {
			t.Fatalf("%s: Roster has %d items, %v", c.name, len(r.Items), err)
		}
	}
}

// Update appends only to an account that exists.
func TestUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := apptest.Open(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{})
	ran := 0
	decide := func(accounts.State) ([]event.Envelope, error) { ran++; return nil, nil }
	if _, err := a.Update(ctx, "nurse@example.com", decide); !errors.Is(err, account.ErrNotFound) || ran != 0 {
		t.Fatalf("Update of nobody: %v, decided %d times", err, ran)
	}
	if err := a.Register(ctx, "nurse@example.com", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "nurse@example.com", decide); err != nil || ran != 1 {
		t.Fatalf("Update: %v, decided %d times", err, ran)
	}
}
