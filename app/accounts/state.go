package accounts

import (
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/push"
	"annals.im/annals/domain/roster"
	"annals.im/annals/domain/upload"
	"annals.im/annals/domain/vcard"
)

// State is everything folded from an account's stream.
type State struct {
	Account account.State
	Roster  roster.State
	Prefs   archive.Prefs  // archiving preferences (XEP-0441)
	PEP     pep.State      // personal eventing nodes (XEP-0163): bookmarks
	VCard   vcard.State    // vcard-temp (XEP-0054), with its avatar's hash (XEP-0153)
	Blocked blocking.State // the block list (XEP-0191)
	Push    push.State     // push registrations (XEP-0357)
	Uploads upload.State   // live HTTP upload slots (XEP-0363): the quota
}

// Evolve folds one event of an account's stream. State is kept per
// incarnation: AccountCreated starts from nothing, so an account
// registered under a deleted one's name inherits none of its roster,
// bookmarks, preferences, vCard, block list, push registrations or
// upload quota.
func Evolve(s State, e event.Envelope) (State, error) {
	if e.Type == account.TypeCreated {
		s = State{}
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
	if s.PEP, err = pep.Evolve(s.PEP, e); err != nil {
		return s, err
	}
	if s.VCard, err = vcard.Evolve(s.VCard, e); err != nil {
		return s, err
	}
	if s.Blocked, err = blocking.Evolve(s.Blocked, e); err != nil {
		return s, err
	}
	if s.Push, err = push.Evolve(s.Push, e); err != nil {
		return s, err
	}
	if s.Uploads, err = upload.Evolve(s.Uploads, e); err != nil {
		return s, err
	}
	if e.Type == account.TypeContentErased {
		// What the erased keys sealed: items and the vCard. Whatever is
		// published after the erasure is sealed under new keys.
		s.PEP, s.VCard = s.PEP.WithoutItems(), vcard.State{}
	}
	return s, nil
}
