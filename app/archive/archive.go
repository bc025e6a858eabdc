package archive

import (
	"context"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	archiveproj "annals.im/annals/projections/archive"
)

// defaultCause is the cause of the events of a caller that gave none:
// the c2s adapter, until it passes each stanza's id.
const defaultCause = "c2s"

// Limits bound what the archive stores for one account; 0 is no bound.
type Limits struct {
	// QuotaBytes bounds the bytes of 1:1 messages an account may have
	// stored by sending them.
	QuotaBytes int64
	// OfflineMax bounds the messages waiting for an offline account.
	OfflineMax int64
}

// Service gives the adapters the message archive.
type Service struct {
	accounts *accounts.Service
	store    eventstore.Store
	reader   *archiveproj.Reader
	ids      *event.IDs
	limits   Limits
	domains  []string
}

// New returns the archive service over store, answering from reader
// (which the store keeps current inline), with the account streams of a.
// domains are the ones this server serves: a party elsewhere (federation)
// has no archive here.
func New(a *accounts.Service, store eventstore.Store, reader *archiveproj.Reader, ids *event.IDs, limits Limits, domains []string) *Service {
	return &Service{accounts: a, store: store, reader: reader, ids: ids, limits: limits, domains: domains}
}

func (a *Service) local(j jid.JID) bool { return slices.Contains(a.domains, j.Domainpart()) }

// Exists reports whether the account bare exists.
func (a *Service) Exists(ctx context.Context, bare string) (bool, error) {
	st, err := a.accounts.Get(ctx, bare)
	return st.Account.Exists, err
}

func inRoster(r roster.State, contact string) bool {
	_, ok := r.Items[contact]
	return ok
}

// Record stores a 1:1 message if either party archives it, and returns
// the event's data once it is durable (the zero MessageSent when neither
// does). account.ErrNotFound: no such recipient; archive.ErrDuplicate:
// the sender's archive has it already; archive.ErrQuota and
// archive.ErrOfflineFull: a limit is reached.
func (a *Service) Record(ctx context.Context, m archive.Send) (archive.MessageSent, error) {
	senderBare, recipientBare := m.From.Bare().String(), m.To.Bare().String()
	senderLocal, recipientLocal := a.local(m.From), a.local(m.To)
	if !senderLocal && !recipientLocal {
		return archive.MessageSent{}, fmt.Errorf("%w: neither %s nor %s is at this server", archive.ErrInvalid, senderBare, recipientBare)
	}
	// A party at another server has no account, preferences or archive
	// here: only the local party archives (its own copy, as for a local
	// conversation).
	if senderLocal {
		sender, err := a.accounts.Get(ctx, senderBare)
		if err != nil {
			return archive.MessageSent{}, err
		}
		m.ArchiveSender = sender.Prefs.Archives(m.To, inRoster(sender.Roster, recipientBare))
	}
	if recipientLocal {
		recipient, err := a.accounts.Get(ctx, recipientBare)
		if err != nil {
			return archive.MessageSent{}, err
		}
		if !recipient.Account.Exists {
			return archive.MessageSent{}, fmt.Errorf("%w: %s", account.ErrNotFound, recipientBare)
		}
		m.ArchiveRecipient = recipient.Prefs.Archives(m.From, inRoster(recipient.Roster, senderBare))
	}
	if m.ArchiveSender && m.MessageID != "" && len(m.MessageID) <= archive.MaxMessageID {
		has, err := a.reader.Has(ctx, senderBare, archive.ArchiveID(m.Session, m.MessageID))
		if err != nil {
			return archive.MessageSent{}, err
		}
		if has {
			return archive.MessageSent{}, archive.ErrDuplicate
		}
	}
	if err := a.quota(ctx, m, senderBare, recipientBare); err != nil {
		return archive.MessageSent{}, err
	}
	evs, err := archive.Decide(m, a.ids, time.Now(), event.Cause(ctx, defaultCause))
	if err != nil || len(evs) == 0 {
		return archive.MessageSent{}, err
	}
	if _, err := a.store.Append(ctx, archive.Stream(senderBare, recipientBare), eventstore.Any, evs...); err != nil {
		return archive.MessageSent{}, fmt.Errorf("archive: message from %s: %w", senderBare, err)
	}
	var d archive.MessageSent
	err = evs[0].Decode(archive.Schema, &d)
	return d, err
}

// quota refuses a message that would be stored past the sender's quota
// or the recipient's offline queue. What is not stored (no party archives
// it, the recipient is online) costs nothing and is not refused. The
// sender's bytes come from the usage read model, which follows the log a
// moment behind: a burst may pass the quota by what is in flight. A
// sender at another server is charged as a local one is: what it can make
// this server keep is bounded by the same quota.
func (a *Service) quota(ctx context.Context, m archive.Send, senderBare, recipientBare string) error {
	self := senderBare == recipientBare
	offline := m.Offline && m.ArchiveRecipient && !self
	if a.limits.QuotaBytes > 0 && (m.ArchiveSender || (m.ArchiveRecipient && !self)) {
		sent, err := a.reader.SentBytes(ctx, senderBare)
		if err != nil {
			return err
		}
		if sent+int64(len(m.Stanza)) > a.limits.QuotaBytes {
			return fmt.Errorf("%w: %s has %d bytes stored, at most %d", archive.ErrQuota, senderBare, sent, a.limits.QuotaBytes)
		}
	}
	if a.limits.OfflineMax > 0 && offline {
		n, err := a.reader.Offlines(ctx, recipientBare)
		if err != nil {
			return err
		}
		if n >= a.limits.OfflineMax {
			return fmt.Errorf("%w: %d messages wait for %s", archive.ErrOfflineFull, n, recipientBare)
		}
	}
	return nil
}

// Query returns a page of acct's archive.
func (a *Service) Query(ctx context.Context, acct string, q archive.Query) (archive.Page, error) {
	return a.reader.Query(ctx, acct, q)
}

// Author returns the author (the occupant's account) of message id in
// room's archive, "" when it has none (XEP-0424 retractions check it).
func (a *Service) Author(ctx context.Context, room, id string) (string, error) {
	return a.reader.Author(ctx, room, id)
}

// Bounds returns the first and last entries of acct's archive.
func (a *Service) Bounds(ctx context.Context, acct string) (first, last archive.Entry, ok bool, err error) {
	return a.reader.Bounds(ctx, acct)
}

// Offline returns up to max messages waiting for acct's next session.
func (a *Service) Offline(ctx context.Context, acct string, max int) ([]archive.Entry, error) {
	return a.reader.Offline(ctx, acct, max)
}

// Delivered records that acct's offline messages were handed over up to
// and including the archive ID through.
func (a *Service) Delivered(ctx context.Context, acct, through string) error {
	cause := event.Cause(ctx, defaultCause)
	_, err := a.accounts.Update(ctx, acct, func(accounts.State) ([]event.Envelope, error) {
		return archive.Delivered(through, a.ids, time.Now(), cause)
	})
	return err
}

// Prefs returns acct's archiving preferences.
func (a *Service) Prefs(ctx context.Context, acct string) (archive.Prefs, error) {
	st, err := a.accounts.Get(ctx, acct)
	return st.Prefs, err
}

// SetPrefs records acct's archiving preferences.
func (a *Service) SetPrefs(ctx context.Context, acct string, p archive.Prefs) error {
	cause := event.Cause(ctx, defaultCause)
	_, err := a.accounts.Update(ctx, acct, func(accounts.State) ([]event.Envelope, error) {
		return archive.SetPrefs(p, a.ids, time.Now(), cause)
	})
	return err
}
