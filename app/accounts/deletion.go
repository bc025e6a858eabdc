package accounts

import (
	"context"
	"errors"
	"fmt"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/roster"
)

// Rooms is what deletion needs of the rooms (app/rooms satisfies it).
type Rooms interface {
	// Of lists the rooms acct occupies or is affiliated with, as far as
	// the log went when asked: a room joined a moment ago counts too.
	Of(ctx context.Context, acct string) ([]string, error)
	// Forget takes acct out of room (room.Forget): a no-op where it has
	// no place, room.ErrNotFound where the room is gone.
	Forget(ctx context.Context, room, acct string) error
}

// Remove deletes an account. What the account was given by others goes
// with it, so that a new account registered under the same name starts
// with nothing of the old one's: its keys first (no new login from then
// on) and the bookmark passwords kept beside the log, then its place in
// its rooms (room.Forget) and in its contacts' rosters (they receive
// unsubscribe and unsubscribed, RFC 6121 §2.5.2, as XEP-0077 §3.2
// asks), then AccountDeleted, which ends every session of the account
// once serve sees it and which the archive follows by dropping the
// account's rows. The account's own roster, bookmarks and preferences
// are folded per incarnation (Evolve). A failure part way leaves an
// account without a password, which a password change repairs, and what
// was forgotten stays forgotten.
func (a *Service) Remove(ctx context.Context, bare string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	bare = j.String()
	st, err := a.owner.Get(ctx, account.Stream(j))
	if err != nil {
		return fmt.Errorf("%s: %w", bare, err)
	}
	if !st.Account.Exists {
		return fmt.Errorf("%s: %w", bare, account.ErrNotFound)
	}
	if err := a.creds.Delete(ctx, bare); err != nil {
		return err
	}
	if a.opts.Secrets != nil {
		if err := a.opts.Secrets.DeleteAccount(ctx, bare); err != nil {
			return err
		}
	}
	if err := a.forget(ctx, bare, st); err != nil {
		return err
	}
	return a.lifecycle(ctx, bare, account.Delete{}, event.Cause(ctx, causeRemove))
}

// forget takes the account with state st out of its rooms and out of its
// contacts' subscriptions. Each step is a no-op where there is nothing to
// do, so it runs again safely: serve sweeps once more when it sees the
// deletion, for a room a still-live session joined meanwhile. Its events
// share one cause: the caller's, or "account-deleted".
func (a *Service) forget(ctx context.Context, bare string, st State) error {
	cause := event.Cause(ctx, causeDeleted)
	ctx = event.WithCause(ctx, cause)
	if a.opts.Rooms != nil {
		rs, err := a.opts.Rooms.Of(ctx, bare)
		if err != nil {
			return fmt.Errorf("%s's rooms: %w", bare, err)
		}
		for _, r := range rs {
			if err := a.opts.Rooms.Forget(ctx, r, bare); err != nil && !errors.Is(err, room.ErrNotFound) {
				return fmt.Errorf("%s leaving %s: %w", bare, r, err)
			}
		}
	}
	for contact := range st.Roster.Items {
		for _, s := range []roster.Stanza{roster.InUnsubscribe, roster.InUnsubscribed} {
			if _, _, err := a.Do(ctx, contact, roster.Presence{Contact: bare, Stanza: s}, cause); err != nil {
				return fmt.Errorf("%s's roster: %w", contact, err)
			}
		}
	}
	return nil
}

// SweepDeleted runs forget again for an account the log says was
// deleted, unless it exists again (a new incarnation is not the old
// one's to lose).
func (a *Service) SweepDeleted(ctx context.Context, bare string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	st, err := a.owner.Get(ctx, account.Stream(j))
	if err != nil {
		return fmt.Errorf("%s: %w", bare, err)
	}
	if st.Account.Exists {
		return nil
	}
	return a.forget(ctx, bare, st)
}

// ContentKeys is what erasure needs of the keys that seal accounts'
// content (adapters/sealing.Keys).
type ContentKeys interface {
	Owned(ctx context.Context, owner string, max int) ([]string, error)
	Destroy(ctx context.Context, ids []string) error
}

// EraseContent erases what bare wrote (adapters/sealing): its keys are
// named in an AccountContentErased event, then destroyed. The event comes
// first: once it is in the log, every reader treats the keys as gone,
// and the read models delete what they sealed. A crash between the two
// leaves keys named but not destroyed; erasing again lists and destroys
// them. The account may exist or not (a deleted account's content is
// erased after its deletion); what it writes later is sealed under new
// keys. It returns how many keys were destroyed.
//
// The bookmark passwords kept beside the log (never sealed: they are not
// in events) are the account's content too, and its bookmarks go with
// the erasure: they are deleted first, so that the scrub the erasure sets
// off finds their rows gone.
func (a *Service) EraseContent(ctx context.Context, bare, reason string, keys ContentKeys) (int, error) {
	j, err := account.ParseJID(bare)
	if err != nil {
		return 0, err
	}
	bare = j.String()
	if len(reason) > account.MaxReason {
		// Before anything is destroyed.
		return 0, fmt.Errorf("%w: %d bytes; at most %d", account.ErrReason, len(reason), account.MaxReason)
	}
	if a.opts.Secrets != nil {
		if err := a.opts.Secrets.DeleteAccount(ctx, bare); err != nil {
			return 0, err
		}
	}
	ids, err := keys.Owned(ctx, bare, account.MaxErasedKeys+1)
	if err != nil {
		return 0, err
	}
	if len(ids) > account.MaxErasedKeys {
		return 0, fmt.Errorf("%s: more than %d content keys, more than one erasure may name", bare, account.MaxErasedKeys)
	}
	if len(ids) == 0 {
		// Nothing sealed, and no account (now or ever): a mistyped JID
		// would otherwise get a stream of its own.
		st, err := a.owner.Get(ctx, account.Stream(j))
		if err != nil {
			return 0, err
		}
		if st.Account.Version == 0 {
			return 0, fmt.Errorf("%s: %w, and nothing of it is sealed here", bare, account.ErrNotFound)
		}
	}
	if err := a.lifecycle(ctx, bare, account.EraseContent{Keys: ids, Reason: reason}, event.Cause(ctx, causeErased)); err != nil {
		return 0, err
	}
	if err := keys.Destroy(ctx, ids); err != nil {
		return 0, fmt.Errorf("%s: the erasure is in the log but its keys are not destroyed (erase again): %w", bare, err)
	}
	return len(ids), nil
}
