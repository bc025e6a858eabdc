// Package last answers Last Activity (XEP-0012): the server's uptime, and
// how long ago a contact's last session ended, from the AccountWentOffline
// events of its stream (0 while one of its clients is online). Only those
// the contact shares its presence with may ask (§4); anyone else is
// forbidden.
package last

import (
	"context"
	"strconv"
	"time"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// NS is XEP-0012's namespace.
const NS = "jabber:iq:last"

// Accounts says when an account's last session ended.
type Accounts interface {
	LastOffline(ctx context.Context, bare string) (time.Time, string, error)
}

// Host says which of an account's clients are online.
type Host interface {
	Available(acct string) []mux.Session
}

// Service answers last-activity requests.
type Service struct {
	accounts Accounts
	host     Host
	started  time.Time
	now      func() time.Time
}

// New returns the service; its uptime counts from now.
func New(accounts Accounts, host Host) *Service {
	return &Service{accounts: accounts, host: host, started: time.Now(), now: time.Now}
}

// Register answers on m: the server's uptime, a contact's last activity.
func (s *Service) Register(m *mux.Mux) {
	m.Handle(mux.Server, NS, s.uptime, NS)
	m.Handle(mux.Contact, NS, s.contact)
	m.Handle(mux.Anyone, NS, func(context.Context, *mux.IQ) error {
		// XEP-0012 §4: without a subscription to the contact's presence.
		return stanza.Errorf("forbidden", "only those the account shares its presence with may know when it was last online")
	})
}

func (s *Service) uptime(_ context.Context, iq *mux.IQ) error {
	if iq.Type() != "get" {
		return stanza.Errorf("bad-request", "a last activity request is an IQ get")
	}
	iq.Result(query(s.now().Sub(s.started), ""))
	return nil
}

func (s *Service) contact(ctx context.Context, iq *mux.IQ) error {
	if iq.Type() != "get" {
		return stanza.Errorf("bad-request", "a last activity request is an IQ get")
	}
	acct := iq.From
	if len(s.host.Available(acct)) > 0 {
		iq.Result(query(0, "")) // §4: a connected contact has been idle 0 seconds here
		return nil
	}
	at, status, err := s.accounts.LastOffline(ctx, acct)
	if err != nil {
		return err
	}
	if at.IsZero() {
		return stanza.Errorf("item-not-found", "no session of this account has ended since it was made")
	}
	iq.Result(query(s.now().Sub(at), status))
	return nil
}

// query is the answer: whole seconds and the status, if any.
func query(d time.Duration, status string) string {
	return "<query xmlns='" + NS + "' seconds='" + strconv.FormatInt(int64(max(d, 0)/time.Second), 10) + "'>" + stanza.Escape(status) + "</query>"
}
