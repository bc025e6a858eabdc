package main

import (
	"context"
	"fmt"
	"time"

	"annals.im/annals/adapters/credentials"
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

func evolveAccount(s accountState, e event.Envelope) (accountState, error) {
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

// SetPassword records a password change and stores the new keys.
func (a *accountsService) SetPassword(ctx context.Context, bare, password string) error {
	c, err := credentials.Derive(password)
	if err != nil {
		return err
	}
	if err := a.lifecycle(ctx, bare, account.ChangePassword{Mechanisms: c.Mechanisms()}, "password"); err != nil {
		return err
	}
	return a.creds.Put(ctx, bare, c)
}

// Remove deletes an account and its keys.
func (a *accountsService) Remove(ctx context.Context, bare string) error {
	if err := a.lifecycle(ctx, bare, account.Delete{}, "remove"); err != nil {
		return err
	}
	return a.creds.Delete(ctx, bare)
}

func (a *accountsService) Roster(ctx context.Context, acct string) (roster.State, error) {
	st, err := a.owner.Get(ctx, "account-"+acct)
	return st.Roster, err
}

func (a *accountsService) Do(ctx context.Context, acct string, cmd roster.Command, cause string) (roster.Outcome, roster.State, error) {
	var out roster.Outcome
	st, _, err := a.owner.Do(ctx, "account-"+acct, func(s accountState) ([]event.Envelope, error) {
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
// streams through the same owner.
type pepService struct{ a *accountsService }

func (p pepService) Node(ctx context.Context, acct, node string) (pep.Node, error) {
	st, err := p.a.owner.Get(ctx, "account-"+acct)
	return st.PEP.Nodes[node], err
}

func (p pepService) Do(ctx context.Context, acct string, cmd any) error {
	_, _, err := p.a.owner.Do(ctx, "account-"+acct, func(s accountState) ([]event.Envelope, error) {
		if !s.Account.Exists {
			return nil, fmt.Errorf("%w: %s", account.ErrNotFound, acct)
		}
		return pep.Decide(s.PEP, cmd, p.a.ids, time.Now(), "c2s")
	})
	return err
}
