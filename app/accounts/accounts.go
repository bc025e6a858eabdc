package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
)

// Causes of the events appended when the caller gave none in the context.
const (
	causeRegister = "register"
	causeOperator = "operator" // a password change not made by a session
	causeRemove   = "remove"
	causeDeleted  = "account-deleted" // what a deletion does to rooms and contacts
	causeErased   = "erase"
	// sessionCause prefixes the id of the session that changed its
	// account's password: that session goes on, the others end.
	sessionCause = "session:"
)

// Service gives the adapters the account streams.
type Service struct {
	owner *streamowner.Owner[State]
	creds *credentials.Store
	ids   *event.IDs
	opts  Options
}

// Options are the optional parts deletion needs.
type Options struct {
	// Rooms, when set, lets Remove take a deleted account out of its rooms.
	Rooms Rooms
	// Secrets, when set, holds the bookmark passwords Remove deletes.
	Secrets *secrets.Store
}

// New returns the service of the account streams in store, with the keys
// kept in creds; ids makes the events' IDs.
func New(store eventstore.Store, creds *credentials.Store, ids *event.IDs, opts Options) *Service {
	return &Service{owner: streamowner.New(store, Evolve), creds: creds, ids: ids, opts: opts}
}

// Get returns the state folded from acct's stream (the zero State for
// an account that never existed).
func (a *Service) Get(ctx context.Context, acct string) (State, error) {
	st, err := a.owner.Get(ctx, account.StreamOf(acct))
	if err != nil {
		return st, fmt.Errorf("account %s: %w", acct, err)
	}
	return st, nil
}

// Update decides and appends events on an existing account's stream,
// through the stream's owner: decide may run more than once (after a
// conflict with another process) and sees the state as it is then. It
// returns the state after the append, or account.ErrNotFound.
func (a *Service) Update(ctx context.Context, acct string, decide func(State) ([]event.Envelope, error)) (State, error) {
	st, _, err := a.owner.Do(ctx, account.StreamOf(acct), func(s State) ([]event.Envelope, error) {
		if !s.Account.Exists {
			return nil, fmt.Errorf("%w: %s", account.ErrNotFound, acct)
		}
		return decide(s)
	})
	return st, err
}

// lifecycle runs an account command through the stream's owner.
func (a *Service) lifecycle(ctx context.Context, bare string, cmd account.Command, cause string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	_, _, err = a.owner.Do(ctx, account.Stream(j), func(s State) ([]event.Envelope, error) {
		return account.Decide(s.Account, cmd, a.ids, time.Now(), cause)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", bare, err)
	}
	return nil
}

// Register creates an account: the event in the log first, the keys
// beside it second. A crash in between leaves an account without a
// password, which a password change repairs; never a password without an
// account.
func (a *Service) Register(ctx context.Context, bare, password string) error {
	c, err := credentials.Derive(password)
	if err != nil {
		return err
	}
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	if err := a.lifecycle(ctx, bare, account.Create{JID: j}, event.Cause(ctx, causeRegister)); err != nil {
		return err
	}
	return a.creds.Put(ctx, j.String(), c)
}

// SetPassword records a password change and stores the new keys. session
// is the id of the client session that asked (in-band), "" for anyone
// else: the event's cause is then "session:<id>", so that every other
// session of the account ends when the log follower sees it and the
// asking one goes on (KeptSession), or else the context's cause
// ("operator" if none), and every session ends.
func (a *Service) SetPassword(ctx context.Context, bare, password, session string) error {
	c, err := credentials.Derive(password)
	if err != nil {
		return err
	}
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	if st, err := a.owner.Get(ctx, account.Stream(j)); err != nil {
		return fmt.Errorf("%s: %w", bare, err)
	} else if !st.Account.Exists {
		return fmt.Errorf("%s: %w", bare, account.ErrNotFound)
	}
	// The new keys first: once the event is seen, sessions end, and a
	// client logging in again must find the new password. Keys without the
	// event (the account was deleted meanwhile) would let a deleted
	// account log in: they go again.
	if err := a.creds.Put(ctx, j.String(), c); err != nil {
		return err
	}
	cause := event.Cause(ctx, causeOperator)
	if session != "" {
		cause = sessionCause + session
	}
	err = a.lifecycle(ctx, bare, account.ChangePassword{Mechanisms: c.Mechanisms()}, cause)
	if errors.Is(err, account.ErrNotFound) {
		return errors.Join(err, a.creds.Delete(ctx, j.String()))
	}
	return err
}

// KeptSession returns the id of the session that made the password
// change e, which goes on while the account's other sessions end; ""
// when none did (every session ends).
func KeptSession(e event.Envelope) string {
	if e.Type != account.TypePasswordChanged {
		return ""
	}
	// Any other cause (an operator, a command) keeps no session, even
	// one that happens to spell a session id.
	keep, ok := strings.CutPrefix(e.Cause, sessionCause)
	if !ok {
		return ""
	}
	return keep
}

// Roster returns acct's roster.
func (a *Service) Roster(ctx context.Context, acct string) (roster.State, error) {
	st, err := a.Get(ctx, acct)
	return st.Roster, err
}

// Do runs a roster command on acct's stream with the cause given (the
// c2s adapter's port passes it: the stanza's id, or "presence"). Nothing
// is kept for an account that does not exist.
func (a *Service) Do(ctx context.Context, acct string, cmd roster.Command, cause string) (roster.Outcome, roster.State, error) {
	var out roster.Outcome
	st, _, err := a.owner.Do(ctx, account.StreamOf(acct), func(s State) ([]event.Envelope, error) {
		if !s.Account.Exists {
			// Subscriptions of an account that does not exist are not kept.
			out = roster.Outcome{}
			return nil, nil
		}
		var err error
		out, err = roster.Decide(s.Roster, acct, cmd, a.ids, time.Now(), cause)
		return out.Events, err
	})
	return out, st.Roster, err
}
