package account_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
)

var (
	ids    = event.NewIDs()
	now    = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)
	juliet = jid.MustParse("juliet@example.com")
)

// given turns past events into a stream as a store would hand it back, with
// dense versions from 1. It copies, so parallel cases never share a slice.
func given(evs ...event.Envelope) []event.Envelope {
	out := make([]event.Envelope, len(evs))
	for i, e := range evs {
		e.Stream = account.Stream(juliet)
		e.Version = uint64(i + 1)
		out[i] = e
	}
	return out
}

func mk(typ event.Type, data any) event.Envelope {
	e, err := event.New(ids, now, typ, account.Schema, "", data)
	if err != nil {
		panic(err)
	}
	return e
}

func created() event.Envelope {
	return mk(account.TypeCreated, account.Created{JID: "juliet@example.com"})
}
func passwordChanged() event.Envelope {
	return mk(account.TypePasswordChanged, account.PasswordChanged{Mechanisms: []string{"SCRAM-SHA-256"}})
}
func deleted() event.Envelope {
	return mk(account.TypeDeleted, account.Deleted{Reason: "user request"})
}

// fold replays a stream through Evolve.
func fold(t *testing.T, evs []event.Envelope) account.State {
	t.Helper()
	var s account.State
	for _, e := range evs {
		var err error
		if s, err = account.Evolve(s, e); err != nil {
			t.Fatalf("Evolve(%s): %v", e.Type, err)
		}
	}
	return s
}

// then is one expected new event: its type and its data as JSON.
type then struct {
	typ  event.Type
	data string
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		given      []event.Envelope
		when       account.Command
		then       []then
		thenErr    error
		thenExists bool // after the new events are folded in
	}{
		{
			name:       "create on a new stream",
			when:       account.Create{JID: juliet},
			then:       []then{{account.TypeCreated, `{"jid":"juliet@example.com"}`}},
			thenExists: true,
		},
		{
			// The stored JID is the canonical bare one, whatever the command held.
			name:       "create stores the bare JID",
			when:       account.Create{JID: jid.MustParse("Juliet@Example.COM/balcony")},
			then:       []then{{account.TypeCreated, `{"jid":"juliet@example.com"}`}},
			thenExists: true,
		},
		{
			name:    "create on an existing account",
			given:   []event.Envelope{created()},
			when:    account.Create{JID: juliet},
			thenErr: account.ErrExists,
		},
		{
			name:    "create after a password change",
			given:   []event.Envelope{created(), passwordChanged()},
			when:    account.Create{JID: juliet},
			thenErr: account.ErrExists,
		},
		{
			name:       "create after delete",
			given:      []event.Envelope{created(), deleted()},
			when:       account.Create{JID: juliet},
			then:       []then{{account.TypeCreated, `{"jid":"juliet@example.com"}`}},
			thenExists: true,
		},
		{
			name:       "change password",
			given:      []event.Envelope{created()},
			when:       account.ChangePassword{Mechanisms: []string{"SCRAM-SHA-1", "SCRAM-SHA-256"}},
			then:       []then{{account.TypePasswordChanged, `{"mechanisms":["SCRAM-SHA-1","SCRAM-SHA-256"]}`}},
			thenExists: true,
		},
		{
			name:       "change password without mechanisms omits the field",
			given:      []event.Envelope{created()},
			when:       account.ChangePassword{},
			then:       []then{{account.TypePasswordChanged, `{}`}},
			thenExists: true,
		},
		{
			name:       "erase content of an existing account",
			given:      []event.Envelope{created()},
			when:       account.EraseContent{Keys: []string{"k1", "k2"}, Reason: "request 7"},
			then:       []then{{account.TypeContentErased, `{"keys":["k1","k2"],"reason":"request 7"}`}},
			thenExists: true,
		},
		{
			// A deleted account's content is erased after its deletion.
			name:  "erase content of a deleted account",
			given: []event.Envelope{created(), deleted()},
			when:  account.EraseContent{},
			then:  []then{{account.TypeContentErased, `{"keys":[]}`}},
		},
		{
			name:    "erase more keys than one event may name",
			given:   []event.Envelope{created()},
			when:    account.EraseContent{Keys: make([]string, account.MaxErasedKeys+1)},
			thenErr: account.ErrTooMany,
		},
		{
			name:    "erase with a reason past the bound",
			given:   []event.Envelope{created()},
			when:    account.EraseContent{Reason: strings.Repeat("x", account.MaxReason+1)},
			thenErr: account.ErrReason,
		},
		{
			name:    "change password on a missing account",
			when:    account.ChangePassword{Mechanisms: []string{"SCRAM-SHA-256"}},
			thenErr: account.ErrNotFound,
		},
		{
			name:    "change password after delete",
			given:   []event.Envelope{created(), deleted()},
			when:    account.ChangePassword{Mechanisms: []string{"SCRAM-SHA-256"}},
			thenErr: account.ErrNotFound,
		},
		{
			name:  "delete",
			given: []event.Envelope{created(), passwordChanged()},
			when:  account.Delete{Reason: "user request"},
			then:  []then{{account.TypeDeleted, `{"reason":"user request"}`}},
		},
		{
			name:       "the last session ends",
			given:      []event.Envelope{created()},
			when:       account.GoOffline{Status: "gone fishing"},
			then:       []then{{account.TypeWentOffline, `{"status":"gone fishing"}`}},
			thenExists: true,
		},
		{
			name:    "the last session of no account",
			when:    account.GoOffline{},
			thenErr: account.ErrNotFound,
		},
		{
			name:  "delete without a reason omits the field",
			given: []event.Envelope{created()},
			when:  account.Delete{},
			then:  []then{{account.TypeDeleted, `{}`}},
		},
		{
			name:    "delete on a missing account",
			when:    account.Delete{Reason: "user request"},
			thenErr: account.ErrNotFound,
		},
		{
			name:    "delete twice",
			given:   []event.Envelope{created(), deleted()},
			when:    account.Delete{},
			thenErr: account.ErrNotFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			past := given(tc.given...)
			s := fold(t, past)
			// when
			evs, err := account.Decide(s, tc.when, ids, now, "iq-1")
			// then
			if tc.thenErr != nil {
				if !errors.Is(err, tc.thenErr) {
					t.Fatalf("Decide() error = %v, want %v", err, tc.thenErr)
				}
				if evs != nil {
					t.Errorf("Decide() returned events with an error: %+v", evs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide(): %v", err)
			}
			if len(evs) != len(tc.then) {
				t.Fatalf("Decide() = %d events, want %d", len(evs), len(tc.then))
			}
			for i, e := range evs {
				if e.Type != tc.then[i].typ || string(e.Data) != tc.then[i].data {
					t.Errorf("event %d = %s %s, want %s %s", i, e.Type, e.Data, tc.then[i].typ, tc.then[i].data)
				}
				// Decide stamps what it knows and leaves the rest to the store.
				if e.Schema != account.Schema || e.Cause != "iq-1" || !e.OccurredAt.Equal(now) ||
					e.ID.Time() != uint64(now.UnixMilli()) {
					t.Errorf("event %d stamped %+v", i, e)
				}
				if e.Stream != "" || e.Version != 0 || !e.Position.IsZero() || e.Hash != nil {
					t.Errorf("event %d has store fields set: %+v", i, e)
				}
			}
			after := fold(t, given(append(past, evs...)...))
			if after.Exists != tc.thenExists || after.Version != uint64(len(past)+len(evs)) {
				t.Errorf("state after = %+v, want exists %v at version %d", after, tc.thenExists, len(past)+len(evs))
			}
		})
	}
}

func TestDecideUnknownCommand(t *testing.T) {
	t.Parallel()
	var c account.Command // nil: no case matches
	if evs, err := account.Decide(account.State{}, c, ids, now, ""); err == nil {
		t.Errorf("Decide(nil command) = %+v, want an error", evs)
	}
}

func TestEvolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		given []event.Envelope
		then  account.State
	}{
		{"nothing", nil, account.State{}},
		{"created", []event.Envelope{created()},
			account.State{JID: "juliet@example.com", Exists: true, Version: 1}},
		{"password changed", []event.Envelope{created(), passwordChanged()},
			account.State{JID: "juliet@example.com", Exists: true, Version: 2}},
		{"deleted", []event.Envelope{created(), passwordChanged(), deleted()},
			account.State{JID: "juliet@example.com", Exists: false, Version: 3}},
		{"created again", []event.Envelope{created(), deleted(), created()},
			account.State{JID: "juliet@example.com", Exists: true, Version: 3}},
		// Other event types will share the stream; they move the version only.
		{"an event type this package does not own", []event.Envelope{created(), mk("RosterItemAdded", struct{}{})},
			account.State{JID: "juliet@example.com", Exists: true, Version: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// when
			got := fold(t, given(tc.given...))
			// then
			if got != tc.then {
				t.Errorf("state = %+v, want %+v", got, tc.then)
			}
		})
	}
}

func TestEvolveRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		event   func() event.Envelope
		wantErr error // nil: any error
	}{
		// A newer build wrote these; guessing at their layout could corrupt state.
		{"created at schema 2", func() event.Envelope { return schema(created(), 2) }, event.ErrSchemaTooNew},
		{"password changed at schema 2", func() event.Envelope { return schema(passwordChanged(), 2) }, event.ErrSchemaTooNew},
		{"deleted at schema 2", func() event.Envelope { return schema(deleted(), 2) }, event.ErrSchemaTooNew},
		{"created with data of the wrong shape", func() event.Envelope {
			e := created()
			e.Data = json.RawMessage(`{"jid":["juliet@example.com"]}`)
			return e
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// given
			before := fold(t, given(created()))
			e := tc.event()
			e.Version = before.Version + 1
			// when
			after, err := account.Evolve(before, e)
			// then
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Evolve() error = %v, want %v", err, tc.wantErr)
			}
			if after != before {
				t.Errorf("Evolve changed the state on error: %+v, was %+v", after, before)
			}
		})
	}
}

func schema(e event.Envelope, n int) event.Envelope {
	e.Schema = n
	return e
}

func TestParseJID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string // the canonical form when accepted
		wantErr bool   // rejected with ErrJID
	}{
		{in: "juliet@example.com", want: "juliet@example.com"},
		{in: "Juliet@Example.COM", want: "juliet@example.com"}, // PRECIS case folding
		{in: "example.com", wantErr: true},                     // a server, not an account
		{in: "juliet@example.com/res", wantErr: true},          // a full JID names a session
		{in: "", wantErr: true},
		{in: "@example.com", wantErr: true},
		{in: "juliet@", wantErr: true},
		{in: "jul iet@example.com", wantErr: true},
		{in: "juliet@exa mple.com", wantErr: true},
		{in: "a@b@c", wantErr: true},
		{in: "juliet@example.com/", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			// when
			j, err := account.ParseJID(tc.in)
			// then
			if tc.wantErr {
				if !errors.Is(err, account.ErrJID) {
					t.Errorf("ParseJID(%q) = %v, %v; want ErrJID", tc.in, j, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJID(%q): %v", tc.in, err)
			}
			if j.String() != tc.want {
				t.Errorf("ParseJID(%q) = %q, want %q", tc.in, j, tc.want)
			}
		})
	}
}

func TestStream(t *testing.T) {
	t.Parallel()
	// A session's full JID names the same stream as its account.
	for _, in := range []string{"juliet@example.com", "juliet@example.com/balcony", "Juliet@Example.com"} {
		if got := account.Stream(jid.MustParse(in)); got != "account-juliet@example.com" {
			t.Errorf("Stream(%q) = %q", in, got)
		}
	}
}

// An account's stream name and the account it names go both ways; other
// streams name no account.
func TestStreamNames(t *testing.T) {
	for stream, want := range map[string]string{
		account.StreamOf("romeo@localhost"):    "romeo@localhost",
		account.Stream(jid.MustParse("a@b/c")): "a@b",
		"room-hall@conference.localhost":       "",
		"account-":                             "",
	} {
		if got := account.JIDOf(stream); got != want {
			t.Errorf("JIDOf(%q) = %q, want %q", stream, got, want)
		}
	}
}
