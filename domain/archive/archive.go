package archive

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/wellformed"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeMessageSent      event.Type = "ChatMessageSent"
	TypePrefsSet         event.Type = "ArchivePrefsSet"
	TypeOfflineDelivered event.Type = "OfflineDelivered"
	TypeExpired          event.Type = "ArchiveExpired"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Errors of the archive rules.
var (
	ErrInvalid      = errors.New("archive: invalid")
	ErrItemNotFound = errors.New("archive: no such archive ID")
	// ErrDuplicate: the sender's archive already holds the message's
	// computed ID, so this is the same message sent again (a retry after
	// a stream resumption) and must be neither stored nor delivered twice.
	ErrDuplicate = errors.New("archive: message already archived")
	// ErrQuota: the sender has stored as many bytes of messages as it may;
	// the message is neither stored nor delivered.
	ErrQuota = errors.New("archive: the sender's storage quota is used up")
	// ErrOfflineFull: the recipient has as many messages waiting offline
	// as it may; the message is neither stored nor delivered.
	ErrOfflineFull = errors.New("archive: the recipient's offline queue is full")
)

// MaxMessageID is the longest message id attribute that becomes part of an
// archive ID; a longer one is treated as absent (the server picks the ID),
// so that archive IDs stay short enough to index.
const MaxMessageID = 256

// MessageSent is the data of TypeMessageSent: one 1:1 message, as routed.
type MessageSent struct {
	From   string `json:"from"`   // the sender's full JID
	To     string `json:"to"`     // as addressed: a bare or full JID
	Kind   string `json:"kind"`   // "chat" or "normal"
	Stanza string `json:"stanza"` // the message as delivered, without stanza-ids
	// The IDs under which the sender's and the recipient's archives hold
	// it; empty where that party does not archive it.
	SenderID    string `json:"sender_id,omitempty"`
	RecipientID string `json:"recipient_id,omitempty"`
	// Erased: the stanza's key is destroyed (erased or expired,
	// adapters/sealing); Stanza is empty and ErasedBytes says how long it
	// was. Set when the event is read, never written.
	Erased      bool `json:"erased,omitempty"`
	ErasedBytes int  `json:"erased_bytes,omitempty"`
	// Offline: no client of the recipient was available, so the message
	// waits for the recipient's next session (XEP-0160 style delivery).
	Offline bool `json:"offline,omitempty"`
	// WellFormed: Stanza was checked namespace-well-formed when decided
	// (wellformed.Canonical); events written before the check lack it.
	WellFormed bool `json:"well_formed,omitempty"`
}

// ExpiryStream is the stream of TypeExpired.
const ExpiryStream = "archive-expiry"

// Expired is the data of TypeExpired: content older than Before is gone
// from the archives (the read models delete it) and the keys of the
// periods that ended by then are destroyed (adapters/sealing), so the
// log's copy reads as erased too (--archive-expiry).
type Expired struct {
	Before time.Time `json:"before"`
}

// Expire returns the event of expiring content older than before.
func Expire(before time.Time, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	return event.One(ids, now, TypeExpired, Schema, cause, Expired{Before: before.UTC()})
}

// OfflineDelivered is the data of TypeOfflineDelivered, in the recipient's
// account stream: every offline message up to and including the archive
// entry Through was handed to a session.
type OfflineDelivered struct {
	Through string `json:"through"`
}

// Stream returns the conversation stream of two accounts (bare JIDs), the
// same whichever of them sends. A note to oneself has a stream too.
func Stream(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "chat-" + a + "/" + b
}

// ArchiveID is the sender's archive ID of a message with id messageID sent
// on the session whose bound stream had id session.
func ArchiveID(session, messageID string) string { return session + ":" + messageID }

// Send is the command to record a 1:1 message.
type Send struct {
	From      jid.JID // the sender's full JID
	To        jid.JID // as addressed
	Kind      string  // "chat" or "normal"
	Stanza    string
	MessageID string // the id attribute; may be empty
	Session   string // the sender's session id
	// Whether each party archives it, from their preferences.
	ArchiveSender, ArchiveRecipient bool
	Offline                         bool
	// Reserialized: Stanza was written from the tokens of a strict read
	// (wellformed.WriteInner, as the c2s reader does), so Decide need not
	// parse it again; otherwise Decide checks it.
	Reserialized bool
}

// Decide returns the MessageSent event for c, or nothing when neither
// party archives it.
func Decide(c Send, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch {
	case c.Kind != "chat" && c.Kind != "normal":
		return nil, fmt.Errorf("%w: message type %q is not archived as 1:1 chat", ErrInvalid, c.Kind)
	case c.From.Localpart() == "":
		return nil, fmt.Errorf("%w: sender %q is not a user", ErrInvalid, c.From)
	case c.To.Localpart() == "":
		return nil, fmt.Errorf("%w: recipient %q is not an account", ErrInvalid, c.To)
	// The sender's archive ID is computed from its session: a sender that
	// archives is a client of ours, bound to a full JID. One at another
	// server (federation) archives nothing here, and may write from its
	// bare JID.
	case c.ArchiveSender && c.From.Resourcepart() == "":
		return nil, fmt.Errorf("%w: sender %q is not a client's full JID", ErrInvalid, c.From)
	case c.ArchiveSender && c.Session == "":
		return nil, fmt.Errorf("%w: no session id", ErrInvalid)
	case c.Stanza == "":
		return nil, fmt.Errorf("%w: empty stanza", ErrInvalid)
	}
	// What is stored is replayed to clients: it must parse, whoever
	// decides.
	if !c.Reserialized {
		if _, err := wellformed.Canonical(c.Stanza); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	self := c.From.Bare().Equal(c.To.Bare())
	d := MessageSent{From: c.From.String(), To: c.To.String(), Kind: c.Kind, Stanza: c.Stanza, WellFormed: true}
	if c.ArchiveSender {
		d.SenderID = SenderID(c.Session, c.MessageID, ids, now)
	}
	// A note to oneself is one party: it is archived once, as sent.
	if c.ArchiveRecipient && !self {
		d.RecipientID = ids.New(now).String()
		d.Offline = c.Offline
	}
	if d.SenderID == "" && d.RecipientID == "" {
		return nil, nil
	}
	e, err := event.New(ids, now, TypeMessageSent, Schema, cause, d)
	if err != nil {
		return nil, err
	}
	return []event.Envelope{e}, nil
}

// SenderID is the sender's archive ID of a message: computable from the
// session and message id when the message has a usable id, else a ULID.
func SenderID(session, messageID string, ids *event.IDs, now time.Time) string {
	if messageID == "" || len(messageID) > MaxMessageID {
		return ids.New(now).String()
	}
	return ArchiveID(session, messageID)
}

// Default archiving policies (XEP-0441).
const (
	Always = "always"
	Never  = "never"
	Roster = "roster"
)

// Prefs are an account's archiving preferences (XEP-0441). The zero value
// archives everything.
type Prefs struct {
	Default string   `json:"default"` // Always, Never or Roster; "" is Always
	Always  []string `json:"always,omitempty"`
	Never   []string `json:"never,omitempty"`
}

// Archives reports whether a message with contact (a bare or full JID)
// goes into the archive under these preferences; inRoster says whether
// the contact is in the account's roster.
//
// NOTSPEC(XEP-0441 §3): the XEP leaves a JID on both lists undefined;
// never wins here, as the safer reading for privacy.
func (p Prefs) Archives(contact jid.JID, inRoster bool) bool {
	match := func(list []string) bool {
		return slices.ContainsFunc(list, func(s string) bool {
			j, err := jid.Parse(s)
			if err != nil {
				return false
			}
			if j.Resourcepart() == "" {
				return j.Equal(contact.Bare())
			}
			return j.Equal(contact)
		})
	}
	switch {
	case match(p.Never):
		return false
	case match(p.Always):
		return true
	case p.Default == Never:
		return false
	case p.Default == Roster:
		return inRoster
	}
	return true
}

// SetPrefs decides the event for a preferences change.
func SetPrefs(p Prefs, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	switch p.Default {
	case Always, Never, Roster:
	default:
		return nil, fmt.Errorf("%w: default policy %q (want always, never or roster)", ErrInvalid, p.Default)
	}
	for _, list := range [][]string{p.Always, p.Never} {
		for _, s := range list {
			if _, err := jid.Parse(s); err != nil {
				return nil, fmt.Errorf("%w: JID %q: %v", ErrInvalid, s, err)
			}
		}
	}
	e, err := event.New(ids, now, TypePrefsSet, Schema, cause, p)
	if err != nil {
		return nil, err
	}
	return []event.Envelope{e}, nil
}

// EvolvePrefs folds an account stream's events into its preferences.
func EvolvePrefs(p Prefs, e event.Envelope) (Prefs, error) {
	if e.Type != TypePrefsSet {
		return p, nil
	}
	var d Prefs
	if err := e.Decode(Schema, &d); err != nil {
		return p, err
	}
	return d, nil
}

// Delivered decides the mark that offline messages through the archive
// entry with ID through were delivered.
func Delivered(through string, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	if through == "" {
		return nil, fmt.Errorf("%w: no archive ID", ErrInvalid)
	}
	e, err := event.New(ids, now, TypeOfflineDelivered, Schema, cause, OfflineDelivered{Through: through})
	if err != nil {
		return nil, err
	}
	return []event.Envelope{e}, nil
}
