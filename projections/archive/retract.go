package archive

// Retractions (XEP-0424) and moderations (XEP-0425) of room messages:
// the archives keep a tombstone in the message's place, under its ID
// (XEP-0424 §5, XEP-0425 §5). The log keeps the message: erasing it is
// crypto-shredding's (issue 17).

import (
	"context"
	"database/sql"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/wellformed"
)

// retract replaces the retracted message's rows, in the room's archive
// and in any account's, with its tombstone.
func retract(ctx context.Context, tx *sql.Tx, e event.Envelope) error {
	var d room.MessageRetracted
	if err := e.Decode(room.Schema, &d); err != nil {
		return err
	}
	r := room.JIDOf(e.Stream)
	var withFull string
	err := tx.QueryRowContext(ctx, `SELECT with_full FROM archive WHERE account = ? AND id = ?`, r, d.ID).Scan(&withFull)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not in the archive (a room destroyed since): nothing to cover
	}
	if err != nil {
		return fmt.Errorf("archive: retracting %s in %s: %w", d.ID, r, err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE archive SET stanza = ? WHERE id = ? AND with_bare = ? AND groupchat = 1`,
		tombstone(withFull, d, e.OccurredAt), d.ID, r)
	if err != nil {
		return fmt.Errorf("archive: retracting %s in %s: %w", d.ID, r, err)
	}
	return nil
}

// tombstone is what stands for a retracted message from (its occupant's
// room JID): the retraction's ID and time, and for a moderation who did
// it and why (XEP-0424 §5, XEP-0425 §5).
func tombstone(from string, d room.MessageRetracted, at time.Time) string {
	inner := ""
	if d.Moderated {
		// NOTSPEC(XEP-0425 §5): the moderator's occupant JID is not kept
		// (it may have left or changed its nick); the room's JID says a
		// moderator of it did it.
		inner = "<moderated xmlns='urn:xmpp:message-moderate:1' by='" + stanza.Escape(bare(from)) + "'/>"
		if d.Reason != "" {
			inner += "<reason>" + stanza.Escape(d.Reason) + "</reason>"
		}
	}
	return "<message xmlns='jabber:client' type='groupchat' from='" + stanza.Escape(from) + "'><retracted xmlns='urn:xmpp:message-retract:1' id='" +
		stanza.Escape(d.Notice) + "' stamp='" + stanza.Stamp(at) + "'>" + inner + "</retracted></message>"
}

// Author returns the author (the occupant's account) of message id in
// room r's archive: "" when the room has no such message, or no author
// is known (one archived before authors were, a mirrored room's).
func (r *Reader) Author(ctx context.Context, room, id string) (string, error) {
	if err := r.caughtUp(ctx); err != nil {
		return "", err
	}
	var author string
	err := r.db.QueryRowContext(ctx, `SELECT author FROM archive WHERE account = ? AND id = ?`, room, id).Scan(&author)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return author, err
}

// retractChat puts a tombstone in the place of the message a 1:1
// retraction names (XEP-0424: the original's id attribute, retract:1 or
// the fastened retract:0), in both parties' archives, if the same sender
// wrote it in the same conversation. The retraction itself is archived
// as any message (the caller did).
func retractChat(ctx context.Context, tx *sql.Tx, e event.Envelope, d archive.MessageSent) error {
	if !strings.Contains(d.Stanza, "urn:xmpp:message-retract:") {
		return nil // the cheap check: most messages retract nothing
	}
	m, err := stanza.Parse([]byte(d.Stanza), wellformed.DefaultMaxDepth)
	if err != nil {
		return nil
	}
	target := ""
	if x, ok := m.Named("urn:xmpp:message-retract:1", "retract"); ok {
		target = x.Attr("id")
	} else if x, ok := m.Named("urn:xmpp:fasten:0", "apply-to"); ok {
		if _, ok := x.Named("urn:xmpp:message-retract:0", "retract"); ok {
			target = x.Attr("id")
		}
	}
	if target == "" {
		return nil
	}
	sender, other := bare(d.From), bare(d.To)
	var withFull string
	err = tx.QueryRowContext(ctx, `SELECT with_full FROM archive WHERE account IN (?1, ?2) AND msg_id = ?3 AND author = ?1 AND groupchat = 0 LIMIT 1`,
		sender, other, target).Scan(&withFull)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("archive: retracting %s of %s: %w", target, sender, err)
	}
	tomb := "<message xmlns='jabber:client' type='chat' from='" + stanza.Escape(d.From) + "' id='" + stanza.Escape(target) +
		"'><retracted xmlns='urn:xmpp:message-retract:1' id='" + stanza.Escape(messageID(d.Stanza)) + "' stamp='" + stanza.Stamp(e.OccurredAt) + "'/></message>"
	_, err = tx.ExecContext(ctx, `UPDATE archive SET stanza = ?4 WHERE msg_id = ?3 AND author = ?1 AND groupchat = 0 AND
		(account = ?1 AND with_bare = ?2 OR account = ?2 AND with_bare = ?1)`, sender, other, target, tomb)
	if err != nil {
		return fmt.Errorf("archive: retracting %s of %s: %w", target, sender, err)
	}
	return nil
}

// messageID is the id attribute of a message's start tag, or "".
func messageID(s string) string {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if start, ok := tok.(xml.StartElement); ok {
			for _, a := range start.Attr {
				if a.Name.Space == "" && a.Name.Local == "id" {
					return a.Value
				}
			}
			return ""
		}
	}
}
