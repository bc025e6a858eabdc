package c2s

// Roster pushes from the log (RFC 6121 §2.1.6): every change to a roster
// reaches the account's sessions whichever process made it: a roster set
// of one of its clients, a subscription, or a contact's deletion swept by
// the CLI.

import (
	"context"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
)

func isRosterEvent(e event.Envelope) bool {
	return e.Type == roster.TypeItemSet || e.Type == roster.TypeItemRemoved || e.Type == roster.TypeSubscriptionChanged
}

// pushRoster pushes the roster item that e changed to the sessions of its
// account. The item pushed is as the roster is now (the push carries the
// roster's current version): a client that gets two pushes for one
// contact ends at the same item either way.
func (s *Server) pushRoster(ctx context.Context, e event.Envelope) {
	acct := account.JIDOf(e.Stream)
	var d struct {
		Contact string `json:"contact"`
	}
	if s.cfg.Accounts == nil || acct == "" || e.Decode(roster.Schema, &d) != nil || d.Contact == "" || len(s.sessionsOf(acct)) == 0 {
		return
	}
	st, err := s.cfg.Accounts.Roster(ctx, acct)
	if err != nil {
		s.cfg.Log.Error("roster push", "account", acct, "err", err)
		return
	}
	s.push(acct, st, d.Contact)
}
