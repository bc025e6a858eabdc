// Package vcard is the application service of the accounts' vCards
// (vcard-temp, XEP-0054): a vCard set is a VCardSet event in the
// account's stream, appended through the accounts service (app/accounts),
// the streams' one owner; reading one folds the stream, with the avatar's
// hash (XEP-0153) computed when the vCard was set.
//
// Invariants:
//   - Nothing is kept for an account that does not exist.
//   - Each event's cause is the one the caller put in the context
//     (event.WithCause), or "c2s", the adapter that has not given one.
//
// The package imports no adapter that serves clients: the vcard feature
// declares the small interface it needs (vcard.VCards there).
package vcard

import (
	"context"
	"time"

	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/vcard"
)

// defaultCause is the cause of the events of a caller that gave none.
const defaultCause = "c2s"

// Service gives the adapters the accounts' vCards.
type Service struct {
	accounts *accounts.Service
	ids      *event.IDs
}

// New returns the vCard service of the accounts a keeps; ids makes the
// events' IDs.
func New(a *accounts.Service, ids *event.IDs) *Service {
	return &Service{accounts: a, ids: ids}
}

// VCard returns acct's vCard, and whether the account exists.
func (v *Service) VCard(ctx context.Context, acct string) (vcard.State, bool, error) {
	st, err := v.accounts.Get(ctx, acct)
	return st.VCard, st.Account.Exists, err
}

// SetVCard runs cmd on acct's stream and returns the vCard before and
// after it (the same when nothing changed), or account.ErrNotFound.
func (v *Service) SetVCard(ctx context.Context, acct string, cmd vcard.Set) (before, after vcard.State, err error) {
	cause := event.Cause(ctx, defaultCause)
	st, err := v.accounts.Update(ctx, acct, func(s accounts.State) ([]event.Envelope, error) {
		before = s.VCard // of the run that counted: Update may decide again
		return vcard.Decide(s.VCard, cmd, v.ids, time.Now(), cause)
	})
	return before, st.VCard, err
}
