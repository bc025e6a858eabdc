package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	"annals.im/annals/eventstore/sqlite"
	"annals.im/annals/projections"
	roomsproj "annals.im/annals/projections/rooms"
)

// Remove deletes an account. What the account was given by others goes
// with it, so that a new account registered under the same name starts
// with nothing of the old one's: its keys first (no new login from then
// on) and the bookmark passwords kept beside the log, then its place in
// its rooms (room.Forget) and in its contacts' rosters (they receive
// unsubscribe and unsubscribed, RFC 6121 §2.5.2, as XEP-0077 §3.2
// asks), then AccountDeleted, which ends every session
// of the account once serve sees it and which the archive follows by
// dropping the account's rows. The account's own roster, bookmarks and
// preferences are folded per incarnation (evolveAccount). A failure part
// way leaves an account without a password, which a password change
// repairs, and what was forgotten stays forgotten.
func (a *accountsService) Remove(ctx context.Context, bare string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	bare = j.String()
	st, err := a.owner.Get(ctx, account.Stream(j))
	if err != nil {
		return err
	}
	if !st.Account.Exists {
		return fmt.Errorf("%s: %w", bare, account.ErrNotFound)
	}
	if err := a.creds.Delete(ctx, bare); err != nil {
		return err
	}
	if a.pwds != nil {
		if err := a.pwds.DeleteAccount(ctx, bare); err != nil {
			return err
		}
	}
	if err := a.forget(ctx, bare, st); err != nil {
		return err
	}
	return a.lifecycle(ctx, bare, account.Delete{}, "remove")
}

// forget takes the account with state st out of its rooms and out of its
// contacts' subscriptions. Each step is a no-op where there is nothing to
// do, so it runs again safely: serve sweeps once more when it sees the
// deletion, for a room a still-live session joined meanwhile.
func (a *accountsService) forget(ctx context.Context, bare string, st accountState) error {
	if a.rooms != nil && a.roomsOf != nil {
		rs, err := a.roomsOf(ctx, bare)
		if err != nil {
			return err
		}
		for _, r := range rs {
			_, _, err := a.rooms.Do(ctx, r, func(room.State) any { return room.Forget{Account: bare} })
			if err != nil && !errors.Is(err, room.ErrNotFound) {
				return fmt.Errorf("%s leaving %s: %w", bare, r, err)
			}
		}
	}
	for contact := range st.Roster.Items {
		for _, s := range []roster.Stanza{roster.InUnsubscribe, roster.InUnsubscribed} {
			if _, _, err := a.Do(ctx, contact, roster.Presence{Contact: bare, Stanza: s}, "account-deleted"); err != nil {
				return fmt.Errorf("%s's roster: %w", contact, err)
			}
		}
	}
	return nil
}

// sweepDeleted runs forget again for an account serve saw deleted, unless
// it exists again (a new incarnation is not the old one's to lose).
func (a *accountsService) sweepDeleted(ctx context.Context, bare string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	st, err := a.owner.Get(ctx, account.Stream(j))
	if err != nil || st.Account.Exists {
		return err
	}
	return a.forget(ctx, bare, st)
}

// forgetIn lets Remove take deleted accounts out of rooms, found in the
// rooms read model of db once it has followed the log as far as it went
// when asked: a room joined a moment ago counts too.
func (a *accountsService) forgetIn(rooms *roomsService, store *sqlite.Store, db *sql.DB) {
	a.rooms = rooms
	a.roomsOf = func(ctx context.Context, acct string) ([]string, error) {
		if err := readModelAt(ctx, store, db, roomsproj.Name, 10*time.Second); err != nil {
			return nil, err
		}
		return roomsproj.Of(ctx, db, acct)
	}
}

// readModelAt waits until projection name has applied the log up to its
// head as of now, at most wait.
func readModelAt(ctx context.Context, store *sqlite.Store, db *sql.DB, name string, wait time.Duration) error {
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for {
		at, err := projections.CheckpointOf(ctx, db, name)
		if err != nil {
			return err
		}
		if !at.Less(head) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %s read model is at %v, behind the log's %v after %v: is a server following the log?", name, at, head, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// passwordCause is the cause of a password change: the in-band session
// that made it keeps going, every other session of the account ends.
func passwordCause(session string) string {
	if session == "" {
		return "operator"
	}
	return "session:" + session
}

// followLog follows the log from after, the events of every process: it
// hands every batch to the c2s server, which delivers room events to the
// sessions attached to the rooms, and ends the sessions that an account
// event takes the ground from: all of a deleted account's (then sweeps
// its rooms and contacts again), and all but the asking one's after a
// password change. So `annals user del` and `user passwd` beside a
// running serve take effect at once, and so does any room event another
// process appends.
func followLog(ctx context.Context, store eventstore.Store, after event.Position, srv *c2s.Server, accounts *accountsService, log *slog.Logger) error {
	sub, err := store.Subscribe(ctx, after)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		batch, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, eventstore.ErrClosed) {
				return nil
			}
			return fmt.Errorf("log follower: %w", err)
		}
		// Room events reach the sessions attached to the rooms.
		srv.Publish(ctx, batch)
		for _, e := range batch {
			acct := account.JIDOf(e.Stream)
			if acct == "" {
				continue
			}
			switch e.Type {
			case account.TypeDeleted:
				n := srv.EndAccount(acct, "not-authorized", "the account was deleted", "")
				log.Info("account deleted: sessions ended", "account", acct, "sessions", n)
				if err := accounts.sweepDeleted(ctx, acct); err != nil {
					log.Error("a deleted account's rooms and contacts", "account", acct, "err", err)
				}
			case account.TypePasswordChanged:
				keep, _ := strings.CutPrefix(e.Cause, "session:")
				n := srv.EndAccount(acct, "reset", "the password was changed", keep)
				log.Info("password changed: other sessions ended", "account", acct, "sessions", n)
			}
		}
	}
}
