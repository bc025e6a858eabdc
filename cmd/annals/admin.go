package main

import (
	"context"
	"fmt"
	"log/slog"

	"annals.im/annals/adapters/features/adhoc"
	"annals.im/annals/app/accounts"
)

// Administration over XMPP (XEP-0050 ad-hoc commands, XEP-0133): the
// administrators are --admin flags, configuration rather than state.

// validateAdmins reads --admin: bare JIDs of accounts at the served
// domains, each once, normalized.
func (x *xmppFlags) validateAdmins() error {
	seen := map[string]bool{}
	var admins stringList
	for _, a := range x.admins {
		bare, err := adhoc.ParseAdmin(a, x.domains)
		if err != nil {
			return fmt.Errorf("%w: --admin %q: give the bare JID of an account here, e.g. admin@%s: %v", errUsage, a, x.domains[0], err)
		}
		if !seen[bare] {
			seen[bare] = true
			admins = append(admins, bare)
		}
	}
	x.admins = admins
	return nil
}

// checkAdmins refuses to serve with in-band registration while an
// admin's account does not exist: whoever registered that name first
// would administer the server. Without registration only the operator
// can make it, and a warning is enough.
func checkAdmins(ctx context.Context, x xmppFlags, accts *accounts.Service, log *slog.Logger) error {
	for _, a := range x.admins {
		st, err := accts.Get(ctx, a)
		if err != nil {
			return err
		}
		switch {
		case st.Account.Exists:
		case x.registration:
			return fmt.Errorf("%w: --admin %s has no account, and --registration would let anyone register it and administer this server: create it first (annals user add %s)", errUsage, a, a)
		default:
			log.Warn("an administrator has no account: create it with annals user add", "account", a)
		}
	}
	return nil
}

// adminAccounts is the accounts service as the ad-hoc commands use it.
type adminAccounts struct{ *accounts.Service }

func (a adminAccounts) Exists(ctx context.Context, bare string) (bool, error) {
	st, err := a.Get(ctx, bare)
	return st.Account.Exists, err
}

// adminCommands serves the commands when there are admins to run them.
func (x xmppFlags) adminCommands(srv adhoc.Host, accts *accounts.Service, log *slog.Logger) (*adhoc.Service, error) {
	if len(x.admins) == 0 {
		return nil, nil
	}
	return adhoc.New(adhoc.Config{Domains: x.domains, Admins: x.admins, Accounts: adminAccounts{accts}, Log: log}, srv)
}
