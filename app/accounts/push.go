package accounts

import (
	"context"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/push"
)

// causePush is the cause of a push registration change whose caller gave
// none.
const causePush = "push"

// Push returns acct's push registrations (XEP-0357): none for an account
// that does not exist.
func (a *Service) Push(ctx context.Context, acct string) (push.State, error) {
	st, err := a.Get(ctx, acct)
	return st.Push, err
}

// PushDo runs an enable or disable command on acct's registrations and
// returns them after it, with whether it changed anything.
func (a *Service) PushDo(ctx context.Context, acct string, cmd push.Command) (push.State, bool, error) {
	cause := event.Cause(ctx, causePush)
	changed := false
	st, err := a.Update(ctx, acct, func(s State) ([]event.Envelope, error) {
		evs, err := push.Decide(s.Push, cmd, a.ids, time.Now(), cause)
		changed = len(evs) > 0
		return evs, err
	})
	return st.Push, changed, err
}
