package accounts

import (
	"context"
	"time"

	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
)

// causeBlocking is the cause of a block list change whose caller gave none.
const causeBlocking = "blocking"

// Blocklist returns acct's block list (XEP-0191): empty for an account
// that does not exist.
func (a *Service) Blocklist(ctx context.Context, acct string) (blocking.State, error) {
	st, err := a.Get(ctx, acct)
	return st.Blocked, err
}

// Block runs a block or unblock command on acct's list, and returns the
// list before and after it: whoever acts on what changed (presence to a
// contact blocked or unblocked) compares the two. A command that changes
// nothing appends nothing and returns the list twice.
func (a *Service) Block(ctx context.Context, acct string, cmd blocking.Command) (before, after blocking.State, err error) {
	cause := event.Cause(ctx, causeBlocking)
	st, err := a.Update(ctx, acct, func(s State) ([]event.Envelope, error) {
		before = s.Blocked
		return blocking.Decide(s.Blocked, cmd, a.ids, time.Now(), cause)
	})
	return before, st.Blocked, err
}
