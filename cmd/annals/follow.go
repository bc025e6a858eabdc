package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"annals.im/annals/adapters/c2s"
	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/eventstore"
)

// followLog follows the log from after, the events of every process: it
// hands every batch to the c2s server, which delivers room events to the
// sessions attached to the rooms, and ends the sessions that an account
// event takes the ground from: all of a deleted account's (then sweeps
// its rooms and contacts again), and all but the asking one's after a
// password change. So `annals user del` and `user passwd` beside a
// running serve take effect at once, and so does any room event another
// process appends. erased, if not nil, is called after a batch with an
// erasure or an expiry in it, whichever process appended it.
//
// sub is the follower's subscription, made by the caller before it says
// it is serving: what any process appends from then on reaches it.
func followLog(ctx context.Context, sub eventstore.Subscription, srv *c2s.Server, accts *accounts.Service, erased func(), log *slog.Logger) error {
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
			if (e.Type == account.TypeContentErased || e.Type == archive.TypeExpired) && erased != nil {
				erased()
			}
			acct := account.JIDOf(e.Stream)
			if acct == "" {
				continue
			}
			switch e.Type {
			case account.TypeDeleted:
				n := srv.EndAccount(acct, "not-authorized", "the account was deleted", "")
				log.Info("account deleted: sessions ended", "account", acct, "sessions", n)
				// The deleted incarnation's roster is still folded: its
				// contacts at other servers are told here.
				if st, err := accts.Get(ctx, acct); err == nil && !st.Account.Exists {
					srv.AccountGone(acct, slices.Collect(maps.Keys(st.Roster.Items)))
				}
				if err := accts.SweepDeleted(ctx, acct); err != nil {
					log.Error("a deleted account's rooms and contacts", "account", acct, "err", err)
				}
			case account.TypePasswordChanged:
				n := srv.EndAccount(acct, "reset", "the password was changed", accounts.KeptSession(e))
				log.Info("password changed: other sessions ended", "account", acct, "sessions", n)
			}
		}
	}
}
