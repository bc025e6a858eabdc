package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"annals.im/annals/adapters/credentials"
	"annals.im/annals/adapters/secrets"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
)

// accountState is everything folded from an account's stream.
type accountState struct {
	Account account.State
	Roster  roster.State
	Prefs   archive.Prefs // archiving preferences (XEP-0441)
	PEP     pep.State     // personal eventing nodes (XEP-0163): bookmarks
}

// evolveAccount folds one event of an account's stream. State is kept per
// incarnation: AccountCreated starts from nothing, so an account
// registered under a deleted one's name inherits none of its roster,
// bookmarks or preferences.
func evolveAccount(s accountState, e event.Envelope) (accountState, error) {
	if e.Type == account.TypeCreated {
		s = accountState{}
	}
	var err error
	if s.Account, err = account.Evolve(s.Account, e); err != nil {
		return s, err
	}
	if s.Roster, err = roster.Evolve(s.Roster, e); err != nil {
		return s, err
	}
	if s.Prefs, err = archive.EvolvePrefs(s.Prefs, e); err != nil {
		return s, err
	}
	s.PEP, err = pep.Evolve(s.PEP, e)
	return s, err
}

// accountsService gives the c2s adapter the account streams: it is the
// one place that runs roster commands, through the stream owner.
type accountsService struct {
	owner *streamowner.Owner[accountState]
	creds *credentials.Store
	ids   *event.IDs
	// rooms, when set, lets Remove take a deleted account out of its
	// rooms; roomsOf lists them (from the rooms read model).
	rooms   *roomsService
	roomsOf func(ctx context.Context, acct string) ([]string, error)
	// pwds, when set, holds the bookmark passwords Remove deletes.
	pwds *secrets.Store
}

func newAccounts(store eventstore.Store, creds *credentials.Store) *accountsService {
	return &accountsService{owner: streamowner.New(store, evolveAccount), creds: creds, ids: event.NewIDs()}
}

// lifecycle runs an account command through the stream's owner.
func (a *accountsService) lifecycle(ctx context.Context, bare string, cmd account.Command, cause string) error {
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	_, _, err = a.owner.Do(ctx, account.Stream(j), func(s accountState) ([]event.Envelope, error) {
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
func (a *accountsService) Register(ctx context.Context, bare, password string) error {
	c, err := credentials.Derive(password)
	if err != nil {
		return err
	}
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	if err := a.lifecycle(ctx, bare, account.Create{JID: j}, "register"); err != nil {
		return err
	}
	return a.creds.Put(ctx, j.String(), c)
}

// SetPassword records a password change and stores the new keys. session
// is the id of the client session that asked (in-band), "" for the
// operator: it becomes the event's cause, and every other session of the
// account is ended when serve sees the event (followLog).
func (a *accountsService) SetPassword(ctx context.Context, bare, password, session string) error {
	c, err := credentials.Derive(password)
	if err != nil {
		return err
	}
	j, err := account.ParseJID(bare)
	if err != nil {
		return err
	}
	if st, err := a.owner.Get(ctx, account.Stream(j)); err != nil {
		return err
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
	err = a.lifecycle(ctx, bare, account.ChangePassword{Mechanisms: c.Mechanisms()}, passwordCause(session))
	if errors.Is(err, account.ErrNotFound) {
		return errors.Join(err, a.creds.Delete(ctx, j.String()))
	}
	return err
}

func (a *accountsService) Roster(ctx context.Context, acct string) (roster.State, error) {
	st, err := a.owner.Get(ctx, account.StreamOf(acct))
	return st.Roster, err
}

func (a *accountsService) Do(ctx context.Context, acct string, cmd roster.Command, cause string) (roster.Outcome, roster.State, error) {
	var out roster.Outcome
	st, _, err := a.owner.Do(ctx, account.StreamOf(acct), func(s accountState) ([]event.Envelope, error) {
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

// pepService gives the c2s adapter the accounts' PEP nodes, kept in their
// streams through the same owner, and the passwords taken out of their
// items, kept beside the log in pwds.
type pepService struct {
	a     *accountsService
	pwds  *secrets.Store
	locks accountLocks // an item's event and its passwords change together
}

func newPEP(a *accountsService, pwds *secrets.Store) *pepService {
	return &pepService{a: a, pwds: pwds}
}

func (p *pepService) Node(ctx context.Context, acct, node string) (pep.Node, error) {
	st, err := p.a.owner.Get(ctx, account.StreamOf(acct))
	return st.PEP.Nodes[node], err
}

func (p *pepService) Passwords(ctx context.Context, acct, node string) (map[string][]string, error) {
	return p.pwds.Node(ctx, acct, node)
}

// Do runs a PEP command. A publication's passwords are stored after its
// event is appended (as Register stores keys after AccountCreated): a
// crash in between leaves an item whose password is missing, which the
// client publishes again; never a password for an item that was refused.
// Two publications of one account are serialized, so that the last event
// and the last passwords kept are of the same publication.
func (p *pepService) Do(ctx context.Context, acct string, cmd any) error {
	defer p.locks.lock(acct)()
	if c, ok := cmd.(pep.Publish); ok && c.Item.ID == "" {
		c.Item.ID = p.a.ids.New(time.Now()).String() // the passwords' key must be known here
		cmd = c
	}
	var before pep.State
	st, _, err := p.a.owner.Do(ctx, account.StreamOf(acct), func(s accountState) ([]event.Envelope, error) {
		if !s.Account.Exists {
			return nil, fmt.Errorf("%w: %s", account.ErrNotFound, acct)
		}
		before = s.PEP // of the run that counted: Do may decide again
		return pep.Decide(s.PEP, cmd, p.a.ids, time.Now(), "c2s")
	})
	if err != nil {
		return err
	}
	switch c := cmd.(type) {
	case pep.Publish:
		if err := p.pwds.Put(ctx, acct, c.Node, c.Item.ID, c.Passwords); err != nil {
			return err
		}
		// Items pushed out of the node (max_items) take their passwords along.
		after := st.PEP.Nodes[c.Node]
		for _, it := range before.Nodes[c.Node].Items {
			if _, kept := after.Item(it.ID); it.HasPassword && !kept {
				if err := p.pwds.Delete(ctx, acct, c.Node, it.ID); err != nil {
					return err
				}
			}
		}
	case pep.Retract:
		return p.pwds.Delete(ctx, acct, c.Node, c.ID)
	}
	return nil
}

// accountLocks serializes work per account, holding a mutex only for the
// accounts being worked on, so that accounts never wait for each other.
type accountLocks struct {
	mu sync.Mutex
	m  map[string]*accountLock
}

type accountLock struct {
	sync.Mutex
	users int
}

// lock locks acct and returns its unlock.
func (l *accountLocks) lock(acct string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*accountLock)
	}
	al := l.m[acct]
	if al == nil {
		al = &accountLock{}
		l.m[acct] = al
	}
	al.users++
	l.mu.Unlock()
	al.Lock()
	return func() {
		al.Unlock()
		l.mu.Lock()
		if al.users--; al.users == 0 {
			delete(l.m, acct)
		}
		l.mu.Unlock()
	}
}
