package account

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/domain/event"
)

// Event types, written by hand: renaming a Go type must not orphan stored events.
const (
	TypeCreated         event.Type = "AccountCreated"
	TypePasswordChanged event.Type = "AccountPasswordChanged"
	TypeDeleted         event.Type = "AccountDeleted"
	TypeWentOffline     event.Type = "AccountWentOffline"
	TypeContentErased   event.Type = "AccountContentErased"
)

// Schema is the newest schema of each event type that this build reads and writes.
const Schema = 1

// Errors of the account rules.
var (
	ErrExists   = errors.New("account: already exists")
	ErrNotFound = errors.New("account: no such account")
	ErrJID      = errors.New("account: not a bare JID")
	ErrTooMany  = errors.New("account: too many keys for one erasure")
	ErrReason   = errors.New("account: the erasure's reason is too long")
)

// Created is the data of TypeCreated.
type Created struct {
	JID string `json:"jid"`
}

// PasswordChanged is the data of TypePasswordChanged. It says which
// mechanism families the new credentials serve, never the credentials.
type PasswordChanged struct {
	Mechanisms []string `json:"mechanisms,omitempty"`
}

// Deleted is the data of TypeDeleted.
type Deleted struct {
	Reason string `json:"reason,omitempty"`
}

// WentOffline is the data of TypeWentOffline: the account's last session
// ended (XEP-0012 last activity counts from the event's time), with the
// status its client left, if any.
type WentOffline struct {
	Status string `json:"status,omitempty"`
}

// ContentErased is the data of TypeContentErased: the keys that sealed
// the account's content (adapters/sealing) are destroyed, so that content
// reads as erased wherever the log holds it. Keys names them: what a key
// made after this event seals stays readable, and what any of these
// sealed reads as erased even where it comes later in the log (sealed
// by a process that had not seen the erasure yet).
type ContentErased struct {
	Keys   []string `json:"keys"`
	Reason string   `json:"reason,omitempty"`
}

// MaxErasedKeys bounds one erasure's list of keys: ten years of daily
// message keys and the state keys fit many times over.
const MaxErasedKeys = 100_000

// MaxReason bounds an erasure's reason: a reference, not a letter.
const MaxReason = 1024

// MaxStatus bounds the status kept of a logout.
const MaxStatus = 1024

// streamPrefix begins the name of every account's stream.
const streamPrefix = "account-"

// Stream returns the stream name of the account with bare JID j.
func Stream(j jid.JID) string { return streamPrefix + j.Bare().String() }

// StreamOf returns the stream name of the account whose bare JID, already
// checked, is bare.
func StreamOf(bare string) string { return streamPrefix + bare }

// JIDOf returns the bare JID of the account whose stream is stream, or ""
// for a stream that is not an account's.
func JIDOf(stream string) string {
	bare, _ := strings.CutPrefix(stream, streamPrefix)
	if bare == stream {
		return ""
	}
	return bare
}

// ParseJID parses s as an account's bare JID.
func ParseJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: %q: %v", ErrJID, s, err)
	}
	if j.Localpart() == "" || j.Resourcepart() != "" {
		return jid.JID{}, fmt.Errorf("%w: %q needs a local part and no resource", ErrJID, s)
	}
	return j, nil
}

// State is what the rules need to know about one account.
type State struct {
	JID     string
	Exists  bool
	Version uint64 // last version folded in; the expected version of the next append
	// LastOffline is when the account's last session ended (zero: never
	// since it was created), and LastStatus the status it left.
	LastOffline time.Time
	LastStatus  string
}

// Evolve folds one event of the account's stream into s.
func Evolve(s State, e event.Envelope) (State, error) {
	switch e.Type {
	case TypeCreated:
		var d Created
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = State{JID: d.JID, Exists: true}
	case TypePasswordChanged:
		var d PasswordChanged
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
	case TypeDeleted:
		var d Deleted
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.Exists = false
	case TypeContentErased:
		var d ContentErased
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
	case TypeWentOffline:
		var d WentOffline
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s.LastOffline, s.LastStatus = e.OccurredAt, d.Status
	default:
		// Later issues add roster and room events to this stream; lifecycle
		// state does not depend on them.
	}
	s.Version = e.Version
	return s, nil
}

// Command is one of Create, ChangePassword, Delete, GoOffline, EraseContent.
type Command interface{ command() }

// Create registers the account.
type Create struct{ JID jid.JID }

// ChangePassword records that new credentials were stored.
type ChangePassword struct{ Mechanisms []string }

// Delete removes the account.
type Delete struct{ Reason string }

// GoOffline records that the account's last session ended.
type GoOffline struct{ Status string }

// EraseContent records that the keys sealing the account's content are
// destroyed. It is allowed whether the account exists or not: a deleted
// account's content is erased after its deletion.
type EraseContent struct {
	Keys   []string
	Reason string
}

func (Create) command()         {}
func (ChangePassword) command() {}
func (Delete) command()         {}
func (GoOffline) command()      {}
func (EraseContent) command()   {}

// Decide returns the events that carry out c on an account in state s, or a
// domain error. ids, now and cause only stamp the new envelopes.
func Decide(s State, c Command, ids *event.IDs, now time.Time, cause string) ([]event.Envelope, error) {
	var (
		t    event.Type
		data any
	)
	switch c := c.(type) {
	case Create:
		if s.Exists {
			return nil, fmt.Errorf("%w: %s", ErrExists, s.JID)
		}
		t, data = TypeCreated, Created{JID: c.JID.Bare().String()}
	case ChangePassword:
		if !s.Exists {
			return nil, ErrNotFound
		}
		t, data = TypePasswordChanged, PasswordChanged(c)
	case Delete:
		if !s.Exists {
			return nil, ErrNotFound
		}
		t, data = TypeDeleted, Deleted(c)
	case GoOffline:
		if !s.Exists {
			return nil, ErrNotFound
		}
		if len(c.Status) > MaxStatus {
			c.Status = strings.ToValidUTF8(c.Status[:MaxStatus], "")
		}
		t, data = TypeWentOffline, WentOffline(c)
	case EraseContent:
		if len(c.Keys) > MaxErasedKeys {
			return nil, fmt.Errorf("%w: %d; at most %d", ErrTooMany, len(c.Keys), MaxErasedKeys)
		}
		if len(c.Reason) > MaxReason {
			return nil, fmt.Errorf("%w: %d bytes; at most %d", ErrReason, len(c.Reason), MaxReason)
		}
		if c.Keys == nil {
			c.Keys = []string{} // the event says "none", not "unknown"
		}
		t, data = TypeContentErased, ContentErased{Keys: c.Keys, Reason: c.Reason}
	default:
		return nil, fmt.Errorf("account: unknown command %T", c)
	}
	e, err := event.New(ids, now, t, Schema, cause, data)
	if err != nil {
		return nil, err
	}
	return []event.Envelope{e}, nil
}
