// Package vcard serves vcard-temp (XEP-0054) for the accounts: an
// account gets and sets its own vCard; anyone, here or at another
// server, contact or not, gets another account's (a vCard is public,
// XEP-0054 §5). And it adds vCard-based avatars (XEP-0153) to the
// accounts' presence: the hash of the vCard's photo, kept with the vCard
// when it was set, in each available presence whose client did not say
// one itself, and a presence broadcast again when the avatar changes.
//
// Rooms' vCards (XEP-0486) are the room service's (adapters/features/muc).
package vcard

import (
	"context"
	"errors"
	"log/slog"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/vcard"
)

// NSUpdate is XEP-0153's presence payload.
const NSUpdate = "vcard-temp:x:update"

// VCards is what the service needs from the account streams (app/vcard).
type VCards interface {
	// VCard returns acct's vCard, and whether the account exists.
	VCard(ctx context.Context, acct string) (vcard.State, bool, error)
	// SetVCard runs cmd on acct's stream and returns the vCard before and
	// after it.
	SetVCard(ctx context.Context, acct string, cmd vcard.Set) (before, after vcard.State, err error)
}

// Host is what the service needs from the session core.
type Host interface {
	// RefreshPresence broadcasts again the presence of the account's
	// available sessions, as the features now dress it.
	RefreshPresence(ctx context.Context, account string)
}

// Config is what the service needs.
type Config struct {
	VCards   VCards
	MaxBytes int // of one vCard; 0: no limit
	Log      *slog.Logger
}

// Service is the vCard service.
type Service struct {
	cfg  Config
	host Host
}

// New returns the service.
func New(cfg Config, host Host) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, host: host}
}

// Register answers vCard IQs on m, advertises vcard-temp on the server
// and on the accounts (XEP-0054 §4), and dresses the accounts' presence.
func (s *Service) Register(m *mux.Mux) {
	// No to is mux.Server's first: the handler tells the own account from
	// the server by the to.
	m.Handle(mux.Server, vcard.NS, s.serve, vcard.NS)
	m.Handle(mux.Account, vcard.NS, s.serve, vcard.NS)
	m.Handle(mux.Anyone, vcard.NS, s.serve)
	m.Feature(mux.Contact, vcard.NS)
	m.AddPresenceChild(s.presenceChild)
}

// serve answers a vCard get or set.
func (s *Service) serve(ctx context.Context, iq *mux.IQ) error {
	if iq.Payload.XMLName.Local != "vCard" {
		return stanza.Errorf("bad-request", "vcard-temp has a vCard element only")
	}
	self := iq.Session.JID().Bare()
	whose := self
	if to := iq.Stanza.Attr("to"); to != "" {
		j, err := jid.Parse(to)
		if err != nil {
			return stanza.Errorf("jid-malformed", "")
		}
		whose = j.Bare()
	}
	set := iq.Type() == "set"
	switch {
	case whose.Equal(self):
		if set {
			return s.set(ctx, iq, self.String())
		}
		st, _, err := s.cfg.VCards.VCard(ctx, self.String())
		if err != nil {
			return s.fail(err)
		}
		if !st.Set {
			// XEP-0054 §3.1 lets the own vCard be empty or item-not-found;
			// clients that edit it ask for it first (slixmpp's set_avatar),
			// and take an error for a failure.
			iq.Result(vcard.Empty)
			return nil
		}
		iq.Result(st.Card.XML)
		return nil
	case set:
		// XEP-0054 §3.2: another's vCard (or the server's) is not to be set.
		return stanza.Errorf("forbidden", "only an account sets its own vCard")
	case whose.Localpart() == "":
		return stanza.Errorf("item-not-found", "the server has no vCard")
	}
	st, exists, err := s.cfg.VCards.VCard(ctx, whose.String())
	if err != nil {
		return s.fail(err)
	}
	if !exists || !st.Set {
		// XEP-0054 §3.3: an error where there is no vCard; the same one
		// where there is no account, which it does not tell apart.
		return stanza.Errorf("item-not-found", "")
	}
	iq.Result(st.Card.XML)
	return nil
}

// set replaces the account's vCard with the one in iq, and broadcasts its
// presence again if that changes what the presence says of its avatar.
func (s *Service) set(ctx context.Context, iq *mux.IQ, acct string) error {
	x := "<vCard xmlns='" + vcard.NS + "'>" + string(iq.Payload.Inner) + "</vCard>"
	before, after, err := s.cfg.VCards.SetVCard(ctx, acct, vcard.Set{XML: x, MaxBytes: s.cfg.MaxBytes})
	if err != nil {
		return s.fail(err)
	}
	iq.Result("")
	if updateX(before) != updateX(after) {
		s.host.RefreshPresence(ctx, acct)
	}
	return nil
}

// fail is err as the stanza error the domain's table gives it; one it
// does not know is logged and answered internal-server-error.
func (s *Service) fail(err error) error {
	if errors.Is(err, account.ErrNotFound) {
		return stanza.Errorf("item-not-found", "")
	}
	se, ok := stanza.ErrorFor(err)
	if !ok {
		s.cfg.Log.Error("vCard", "err", err)
	}
	return se
}

// presenceChild is XEP-0153's update element for the account's available
// presence, unless the client put one there itself (XEP-0153 §4.1 makes
// that the client's to say).
func (s *Service) presenceChild(ctx context.Context, acct string, p *stanza.Element) string {
	if _, ok := p.Named(NSUpdate, "x"); ok {
		return ""
	}
	st, exists, err := s.cfg.VCards.VCard(ctx, acct)
	if err != nil {
		s.cfg.Log.Error("vCard for a presence", "account", acct, "err", err)
		return ""
	}
	if !exists {
		return ""
	}
	return updateX(st)
}

// updateX is the update element the vCard st makes: the photo's hash, an
// empty photo for a vCard without one (XEP-0153 §4.1, 3), nothing for an
// account that never set a vCard (nothing is known of its avatar) or for
// a photo whose data is not in the vCard (its hash is unknown).
func updateX(st vcard.State) string {
	if !st.Set {
		return ""
	}
	h, ok := st.Card.Avatar()
	switch {
	case !ok:
		return ""
	case h == "":
		return "<x xmlns='" + NSUpdate + "'><photo/></x>"
	}
	return "<x xmlns='" + NSUpdate + "'><photo>" + h + "</photo></x>"
}
