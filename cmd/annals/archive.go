package main

import (
	"context"
	"fmt"
	"time"

	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
	"annals.im/annals/eventstore"
	archiveproj "annals.im/annals/projections/archive"
)

// archiveService gives the c2s adapter the message archive: 1:1 messages
// go into the log (their conversation's stream), the archive read model
// (kept inline by the store) answers queries, and preferences and offline
// marks go into the account streams through their owner.
type archiveService struct {
	accounts *accountsService
	store    eventstore.Store
	reader   *archiveproj.Reader
	ids      *event.IDs
	// quotaBytes bounds the bytes of 1:1 messages an account may have
	// stored, offlineMax the messages waiting for an offline account (0:
	// no bound); see traffic.go.
	quotaBytes int64
	offlineMax int64
}

func (a *archiveService) state(ctx context.Context, bare string) (accountState, error) {
	return a.accounts.owner.Get(ctx, account.StreamOf(bare))
}

func (a *archiveService) Exists(ctx context.Context, bare string) (bool, error) {
	st, err := a.state(ctx, bare)
	return st.Account.Exists, err
}

func inRoster(r roster.State, contact string) bool {
	_, ok := r.Items[contact]
	return ok
}

func (a *archiveService) Record(ctx context.Context, m archive.Send) (archive.MessageSent, error) {
	senderBare, recipientBare := m.From.Bare().String(), m.To.Bare().String()
	sender, err := a.state(ctx, senderBare)
	if err != nil {
		return archive.MessageSent{}, err
	}
	recipient, err := a.state(ctx, recipientBare)
	if err != nil {
		return archive.MessageSent{}, err
	}
	if !recipient.Account.Exists {
		return archive.MessageSent{}, fmt.Errorf("%w: %s", account.ErrNotFound, recipientBare)
	}
	m.ArchiveSender = sender.Prefs.Archives(m.To, inRoster(sender.Roster, recipientBare))
	m.ArchiveRecipient = recipient.Prefs.Archives(m.From, inRoster(recipient.Roster, senderBare))
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
	evs, err := archive.Decide(m, a.ids, time.Now(), "c2s")
	if err != nil || len(evs) == 0 {
		return archive.MessageSent{}, err
	}
	if _, err := a.store.Append(ctx, archive.Stream(senderBare, recipientBare), eventstore.Any, evs...); err != nil {
		return archive.MessageSent{}, err
	}
	var d archive.MessageSent
	err = evs[0].Decode(archive.Schema, &d)
	return d, err
}

// quota refuses a message that would be stored past the sender's quota
// or the recipient's offline queue. What is not stored (no party archives
// it, the recipient is online) costs nothing and is not refused. The
// sender's bytes come from the usage read model, which follows the log a
// moment behind: a burst may pass the quota by what is in flight.
func (a *archiveService) quota(ctx context.Context, m archive.Send, senderBare, recipientBare string) error {
	self := senderBare == recipientBare
	offline := m.Offline && m.ArchiveRecipient && !self
	if a.quotaBytes > 0 && (m.ArchiveSender || (m.ArchiveRecipient && !self)) {
		sent, err := a.reader.SentBytes(ctx, senderBare)
		if err != nil {
			return err
		}
		if sent+int64(len(m.Stanza)) > a.quotaBytes {
			return fmt.Errorf("%w: %s has %d bytes stored, at most %d", archive.ErrQuota, senderBare, sent, a.quotaBytes)
		}
	}
	if a.offlineMax > 0 && offline {
		n, err := a.reader.Offlines(ctx, recipientBare)
		if err != nil {
			return err
		}
		if n >= a.offlineMax {
			return fmt.Errorf("%w: %d messages wait for %s", archive.ErrOfflineFull, n, recipientBare)
		}
	}
	return nil
}

func (a *archiveService) Query(ctx context.Context, acct string, q archive.Query) (archive.Page, error) {
	return a.reader.Query(ctx, acct, q)
}

func (a *archiveService) Bounds(ctx context.Context, acct string) (first, last archive.Entry, ok bool, err error) {
	return a.reader.Bounds(ctx, acct)
}

func (a *archiveService) Offline(ctx context.Context, acct string, max int) ([]archive.Entry, error) {
	return a.reader.Offline(ctx, acct, max)
}

// do runs an archive command on an existing account's stream.
func (a *archiveService) do(ctx context.Context, acct string, decide func() ([]event.Envelope, error)) error {
	_, _, err := a.accounts.owner.Do(ctx, account.StreamOf(acct), func(s accountState) ([]event.Envelope, error) {
		if !s.Account.Exists {
			return nil, fmt.Errorf("%w: %s", account.ErrNotFound, acct)
		}
		return decide()
	})
	return err
}

func (a *archiveService) Delivered(ctx context.Context, acct, through string) error {
	return a.do(ctx, acct, func() ([]event.Envelope, error) {
		return archive.Delivered(through, a.ids, time.Now(), "c2s")
	})
}

func (a *archiveService) Prefs(ctx context.Context, acct string) (archive.Prefs, error) {
	st, err := a.state(ctx, acct)
	return st.Prefs, err
}

func (a *archiveService) SetPrefs(ctx context.Context, acct string, p archive.Prefs) error {
	return a.do(ctx, acct, func() ([]event.Envelope, error) {
		return archive.SetPrefs(p, a.ids, time.Now(), "c2s")
	})
}
