package archive_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/app/accounts"
	"annals.im/annals/app/archive"
	"annals.im/annals/app/internal/apptest"
	"annals.im/annals/domain/account"
	domain "annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	archiveproj "annals.im/annals/projections/archive"
)

const (
	juliet = "juliet@example.com"
	romeo  = "romeo@example.com"
)

// open returns an archive service over a fresh store, the archive kept
// inline as serve keeps it, with juliet and romeo registered.
func open(t *testing.T, limits archive.Limits) (*apptest.Env, *accounts.Service, *archive.Service) {
	t.Helper()
	env := apptest.Open(t)
	env.InlineArchive(t)
	a := accounts.New(env.Store, env.Creds, env.IDs, accounts.Options{})
	for _, u := range []string{juliet, romeo} {
		if err := a.Register(context.Background(), u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	return env, a, archive.New(a, env.Store, archiveproj.NewReader(env.DB, env.Store.Unsynced), env.IDs, limits, []string{"example.com"})
}

// msg is a chat message from juliet's balcony session (s1) to to.
func msg(to, id, body string) domain.Send {
	return domain.Send{From: jid.MustParse(juliet + "/balcony"), To: jid.MustParse(to), Kind: "chat", Session: "s1", MessageID: id,
		Stanza: "<message xmlns='jabber:client' type='chat' id='" + id + "'><body>" + body + "</body></message>"}
}

func count(t *testing.T, arch *archive.Service, acct string) int {
	t.Helper()
	p, err := arch.Query(context.Background(), acct, domain.Query{Max: domain.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Entries)
}

// Record, step by step: who archives a message follows each party's
// preferences; a retry, a stranger and nobody archiving are told apart;
// each event carries the context's cause, or "c2s".
func TestRecord(t *testing.T) {
	t.Parallel()
	env, _, arch := open(t, archive.Limits{})
	stream := domain.Stream(juliet, romeo)
	record := func(to, id, body string) func(context.Context) (domain.MessageSent, error) {
		return func(ctx context.Context) (domain.MessageSent, error) { return arch.Record(ctx, msg(to, id, body)) }
	}
	// prefsThen sets acct's preferences, then records a message to romeo.
	prefsThen := func(acct, policy, id string) func(context.Context) (domain.MessageSent, error) {
		return func(ctx context.Context) (domain.MessageSent, error) {
			if err := arch.SetPrefs(ctx, acct, domain.Prefs{Default: policy}); err != nil {
				return domain.MessageSent{}, err
			}
			return arch.Record(ctx, msg(romeo, id, "unheard"))
		}
	}
	steps := []struct {
		name      string
		cause     string // given in the context; "" none
		do        func(ctx context.Context) (domain.MessageSent, error)
		wantErr   error
		sender    bool // the sender's archive has it
		recipient bool // the recipient's has it
		events    int  // in the conversation's stream afterwards
		want      string
	}{
		{"first", "", record(romeo, "m1", "hi"), nil, true, true, 1, "c2s"},
		{"the same again", "", record(romeo, "m1", "hi"), domain.ErrDuplicate, false, false, 1, "c2s"},
		{"for a stanza", "msg-2", record(romeo, "m2", "there"), nil, true, true, 2, "msg-2"},
		{"to a stranger", "msg-3", record("nurse@example.com", "m3", "who?"), account.ErrNotFound, false, false, 2, "msg-2"},
		{"the recipient archives nothing", "msg-4", prefsThen(romeo, domain.Never, "m4"), nil, true, false, 3, "msg-4"},
		// Romeo is not in juliet's roster.
		{"nobody archives", "msg-5", prefsThen(juliet, domain.Roster, "m5"), nil, false, false, 3, "msg-4"},
	}
	for _, s := range steps {
		ctx := event.WithCause(context.Background(), s.cause)
		j, r := count(t, arch, juliet), count(t, arch, romeo)
		d, err := s.do(ctx)
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.wantErr)
		}
		if (d.SenderID != "") != s.sender || (d.RecipientID != "") != s.recipient {
			t.Fatalf("%s: archived as %q and %q, want sender %v, recipient %v", s.name, d.SenderID, d.RecipientID, s.sender, s.recipient)
		}
		if got, want := count(t, arch, juliet)-j, b2i(s.sender); got != want {
			t.Fatalf("%s: juliet's archive grew by %d, want %d", s.name, got, want)
		}
		if got, want := count(t, arch, romeo)-r, b2i(s.recipient); got != want {
			t.Fatalf("%s: romeo's archive grew by %d, want %d", s.name, got, want)
		}
		evs := env.Events(t, stream)
		if len(evs) != s.events || evs[len(evs)-1].Cause != s.want {
			t.Fatalf("%s: %d events, the last caused by %q; want %d and %q", s.name, len(evs), evs[len(evs)-1].Cause, s.events, s.want)
		}
	}
	if e := env.Last(t, account.StreamOf(juliet)); e.Type != domain.TypePrefsSet || e.Cause != "msg-5" {
		t.Fatalf("juliet's preferences: %s caused by %q", e.Type, e.Cause)
	}
	if p, err := arch.Prefs(context.Background(), juliet); err != nil || p.Default != domain.Roster {
		t.Fatalf("juliet's preferences: %+v %v", p, err)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The storage quota and the offline queue refuse what would be stored
// past them, and nothing else.
func TestLimits(t *testing.T) {
	t.Parallel()
	one := len(msg(romeo, "m0", "x").Stanza)
	never := domain.Prefs{Default: domain.Never}
	cases := []struct {
		name    string
		limits  archive.Limits
		prefs   *domain.Prefs // of both, before sending; nil: defaults
		offline bool
		sent    int // messages recorded (and caught up) before the one that counts
		wantErr error
	}{
		{"under the quota", archive.Limits{QuotaBytes: int64(2 * one)}, nil, false, 1, nil},
		{"past the quota", archive.Limits{QuotaBytes: int64(2*one - 1)}, nil, false, 1, domain.ErrQuota},
		{"past the quota, stored nowhere", archive.Limits{QuotaBytes: 1}, &never, false, 0, nil},
		{"no quota", archive.Limits{}, nil, false, 5, nil},
		{"the offline queue has room", archive.Limits{OfflineMax: 2}, nil, true, 1, nil},
		{"the offline queue is full", archive.Limits{OfflineMax: 2}, nil, true, 2, domain.ErrOfflineFull},
		{"online past the offline bound", archive.Limits{OfflineMax: 2}, nil, false, 2, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env, _, arch := open(t, c.limits)
			if c.prefs != nil {
				for _, u := range []string{juliet, romeo} {
					if err := arch.SetPrefs(ctx, u, *c.prefs); err != nil {
						t.Fatal(err)
					}
				}
			}
			send := func(id string) error {
				m := msg(romeo, id, "x")
				// The messages before wait offline: the queue is full of them.
				m.Offline = c.offline || strings.HasPrefix(id, "b")
				_, err := arch.Record(ctx, m)
				return err
			}
			for i := range c.sent {
				if err := send("b" + string(rune('0'+i))); err != nil {
					t.Fatal(err)
				}
			}
			env.CatchUp(t) // the usage read model follows the log a moment behind
			if err := send("m9"); !errors.Is(err, c.wantErr) {
				t.Fatalf("the last message: %v, want %v", err, c.wantErr)
			}
		})
	}
}

// Offline messages wait until Delivered records their hand-over.
func TestOffline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, _, arch := open(t, archive.Limits{OfflineMax: 1})
	m := msg(romeo, "m1", "while you slept")
	m.Offline = true
	d, err := arch.Record(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := arch.Offline(ctx, romeo, 10)
	if err != nil || len(waiting) != 1 || waiting[0].ID != d.RecipientID {
		t.Fatalf("waiting: %+v %v; want %s", waiting, err, d.RecipientID)
	}
	m2 := msg(romeo, "m2", "and again")
	m2.Offline = true
	if _, err := arch.Record(ctx, m2); !errors.Is(err, domain.ErrOfflineFull) {
		t.Fatalf("a second offline message past the bound: %v", err)
	}
	if err := arch.Delivered(event.WithCause(ctx, "presence-1"), romeo, d.RecipientID); err != nil {
		t.Fatal(err)
	}
	if e := env.Last(t, account.StreamOf(romeo)); e.Type != domain.TypeOfflineDelivered || e.Cause != "presence-1" {
		t.Fatalf("romeo's last event: %s caused by %q", e.Type, e.Cause)
	}
	if waiting, err := arch.Offline(ctx, romeo, 10); err != nil || len(waiting) != 0 {
		t.Fatalf("still waiting after delivery: %+v %v", waiting, err)
	}
	if err := arch.Delivered(ctx, "nurse@example.com", d.RecipientID); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("Delivered to nobody: %v", err)
	}
	if ok, err := arch.Exists(ctx, "nurse@example.com"); ok || err != nil {
		t.Fatalf("nurse exists: %v %v", ok, err)
	}
	if first, last, ok, err := arch.Bounds(ctx, romeo); err != nil || !ok || first.ID != d.RecipientID || last.ID != d.RecipientID {
		t.Fatalf("bounds of romeo's archive: %v %v %v %v", first, last, ok, err)
	}
}

// A conversation with someone at another server is archived by the local
// party alone, either way; a message between two remote parties, or to a
// local account that does not exist, is refused.
func TestRecordFederated(t *testing.T) {
	t.Parallel()
	_, _, arch := open(t, archive.Limits{})
	ctx := context.Background()
	out := msg("mercutio@elsewhere.example", "m1", "to verona")
	d, err := arch.Record(ctx, out)
	if err != nil || d.SenderID == "" || d.RecipientID != "" {
		t.Fatalf("to a remote contact: %+v %v, want the sender's ID alone", d, err)
	}
	in := domain.Send{From: jid.MustParse("mercutio@elsewhere.example/street"), To: jid.MustParse(juliet), Kind: "chat",
		Stanza: "<message xmlns='jabber:client' type='chat' id='r1'><body>from verona</body></message>"}
	d, err = arch.Record(ctx, in)
	if err != nil || d.SenderID != "" || d.RecipientID == "" {
		t.Fatalf("from a remote contact: %+v %v, want the recipient's ID alone", d, err)
	}
	if n := count(t, arch, juliet); n != 2 {
		t.Fatalf("juliet's archive has %d entries, want 2", n)
	}
	in.To = jid.MustParse("nurse@example.com")
	if _, err := arch.Record(ctx, in); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("to a local stranger: %v, want not found", err)
	}
	in.To = jid.MustParse("tybalt@other.example")
	if _, err := arch.Record(ctx, in); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("between two remote parties: %v, want invalid", err)
	}
}
