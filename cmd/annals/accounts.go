package main

import (
	"context"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	streamowner "annals.im/annals/eventstore/owner"
)

// accountState is everything folded from an account's stream.
type accountState struct {
	Account account.State
	Roster  roster.State
}

func evolveAccount(s accountState, e event.Envelope) (accountState, error) {
	var err error
	if s.Account, err = account.Evolve(s.Account, e); err != nil {
		return s, err
	}
	s.Roster, err = roster.Evolve(s.Roster, e)
	return s, err
}

// accountsService gives the c2s adapter the account streams: it is the
// one place that runs roster commands, through the stream owner.
type accountsService struct {
	owner *streamowner.Owner[accountState]
	ids   *event.IDs
}

func newAccounts(store eventstore.Store) *accountsService {
	return &accountsService{owner: streamowner.New(store, evolveAccount), ids: event.NewIDs()}
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
