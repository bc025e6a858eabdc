package accounts

import (
	"context"
	"time"

	"annals.im/annals/domain/account"
)

// WentOffline records that the account's last session ended, with the
// status its client left (XEP-0012 last activity counts from it).
func (a *Service) WentOffline(ctx context.Context, bare, status string) error {
	return a.lifecycle(ctx, bare, account.GoOffline{Status: status}, "c2s")
}

// LastOffline returns when the account's last session ended and the
// status it left; the zero time when none has since it was created.
func (a *Service) LastOffline(ctx context.Context, bare string) (time.Time, string, error) {
	st, err := a.Get(ctx, bare)
	return st.Account.LastOffline, st.Account.LastStatus, err
}
