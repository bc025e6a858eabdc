package roster

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"annals.im/annals/domain/event"
)

// Event types, written by hand.
const (
	TypeItemSet             event.Type = "RosterItemSet"
	TypeItemRemoved         event.Type = "RosterItemRemoved"
	TypeSubscriptionChanged event.Type = "SubscriptionChanged"
)

// Schema is the newest schema of each event type this build knows.
const Schema = 1

// Errors of the roster rules.
var (
	ErrSelf     = errors.New("roster: an account cannot be its own contact")
	ErrNoItem   = errors.New("roster: no such item")
	ErrBadGroup = errors.New("roster: group names must be unique and non-empty")
	ErrFull     = errors.New("roster: the roster is full")
)

// Subscription is the RFC 6121 subscription attribute value.
type Subscription string

const (
	None Subscription = "none"
	To   Subscription = "to"   // the account sees the contact's presence
	From Subscription = "from" // the contact sees the account's presence
	Both Subscription = "both"
)

func (s Subscription) to() bool   { return s == To || s == Both }
func (s Subscription) from() bool { return s == From || s == Both }

func sub(to, from bool) Subscription {
	switch {
	case to && from:
		return Both
	case to:
		return To
	case from:
		return From
	}
	return None
}

// Item is one roster entry.
type Item struct {
	Contact      string       `json:"contact"` // bare JID
	Name         string       `json:"name,omitempty"`
	Groups       []string     `json:"groups,omitempty"`
	Subscription Subscription `json:"subscription"`
	AskOut       bool         `json:"ask_out,omitempty"`    // our subscribe awaits an answer
	PendingIn    bool         `json:"pending_in,omitempty"` // their subscribe awaits ours
}

// ItemSet is the data of TypeItemSet: name and groups, as the user set them.
type ItemSet struct {
	Contact string   `json:"contact"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// ItemRemoved is the data of TypeItemRemoved.
type ItemRemoved struct {
	Contact string `json:"contact"`
}

// SubscriptionChanged is the data of TypeSubscriptionChanged: the new
// subscription state of one contact, and the stanza that caused it.
type SubscriptionChanged struct {
	Contact      string       `json:"contact"`
	Subscription Subscription `json:"subscription"`
	AskOut       bool         `json:"ask_out,omitempty"`
	PendingIn    bool         `json:"pending_in,omitempty"`
	Via          Stanza       `json:"via"`
}

// State is an account's roster.
type State struct {
	Items   map[string]Item // by contact bare JID
	Version uint64          // stream version of the last roster event: the roster version
}

// Evolve folds one event of the account stream; other types are skipped.
func Evolve(s State, e event.Envelope) (State, error) {
	switch e.Type {
	case TypeItemSet:
		var d ItemSet
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = s.clone()
		it := s.Items[d.Contact]
		it.Contact, it.Name, it.Groups = d.Contact, d.Name, d.Groups
		if it.Subscription == "" {
			it.Subscription = None
		}
		s.Items[d.Contact] = it
	case TypeItemRemoved:
		var d ItemRemoved
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = s.clone()
		delete(s.Items, d.Contact)
	case TypeSubscriptionChanged:
		var d SubscriptionChanged
		if err := e.Decode(Schema, &d); err != nil {
			return s, err
		}
		s = s.clone()
		it := s.Items[d.Contact]
		it.Contact, it.Subscription, it.AskOut, it.PendingIn = d.Contact, d.Subscription, d.AskOut, d.PendingIn
		s.Items[d.Contact] = it
	default:
		return s, nil
	}
	s.Version = e.Version
	return s, nil
}

// full reports that the roster holds max items or more (max > 0).
func (s State) full(max int) bool { return max > 0 && len(s.Items) >= max }

// clone copies the item map so that states stay values.
func (s State) clone() State {
	items := make(map[string]Item, len(s.Items)+1)
	for k, v := range s.Items {
		items[k] = v
	}
	s.Items = items
	return s
}

// Stanza names a presence subscription stanza and its direction.
type Stanza string

// Subscription stanzas the account sends (Out) or receives (In).
const (
	OutSubscribe    Stanza = "out-subscribe"
	OutSubscribed   Stanza = "out-subscribed"
	OutUnsubscribe  Stanza = "out-unsubscribe"
	OutUnsubscribed Stanza = "out-unsubscribed"
	InSubscribe     Stanza = "in-subscribe"
	InSubscribed    Stanza = "in-subscribed"
	InUnsubscribe   Stanza = "in-unsubscribe"
	InUnsubscribed  Stanza = "in-unsubscribed"
)

// Command is SetItem, RemoveItem or Presence.
type Command interface{ command() }

// SetItem adds or updates an item's name and groups (roster set).
// MaxItems, when positive, is the most items the roster may hold: adding
// one past it fails with ErrFull.
type SetItem struct {
	Contact  string
	Name     string
	Groups   []string
	MaxItems int
}

// RemoveItem removes an item, cancelling subscriptions both ways.
type RemoveItem struct{ Contact string }

// Presence is a subscription stanza sent or received by the account.
// MaxItems, when positive, is the most items the roster may hold: a
// stanza that would add one past it fails with ErrFull.
type Presence struct {
	Contact  string
	Stanza   Stanza
	MaxItems int
}

func (SetItem) command()    {}
func (RemoveItem) command() {}
func (Presence) command()   {}

// Outcome tells the caller what to route, beside the events.
type Outcome struct {
	Events []event.Envelope
	// Forward: the subscription stanza goes on to the contact (outbound) or
	// to the account's clients (inbound). False means it is ignored, as
	// RFC 6121 §3 asks for redundant requests.
	Forward bool
	// AutoReply: the server answers an inbound subscribe on the account's
	// behalf with subscribed (the contact is already approved).
	AutoReply bool
	// Unsubscribe and Unsubscribed: after a roster remove, the stanzas the
	// server sends to the contact (RFC 6121 §2.5.2).
	Unsubscribe, Unsubscribed bool
}

// Decide applies cmd to the roster of the account owner.
func Decide(s State, owner string, cmd Command, ids *event.IDs, now time.Time, cause string) (Outcome, error) {
	var out Outcome
	emit := func(t event.Type, data any) error {
		e, err := event.New(ids, now, t, Schema, cause, data)
		if err != nil {
			return err
		}
		out.Events = append(out.Events, e)
		return nil
	}
	switch c := cmd.(type) {
	case SetItem:
		if c.Contact == owner {
			return out, ErrSelf
		}
		seen := map[string]bool{}
		for _, g := range c.Groups {
			if g == "" || seen[g] {
				return out, fmt.Errorf("%w: %q", ErrBadGroup, g)
			}
			seen[g] = true
		}
		it, ok := s.Items[c.Contact]
		if ok && it.Name == c.Name && slices.Equal(it.Groups, c.Groups) {
			return out, nil
		}
		if !ok && s.full(c.MaxItems) {
			return out, fmt.Errorf("%w: %d items", ErrFull, len(s.Items))
		}
		return out, emit(TypeItemSet, ItemSet{Contact: c.Contact, Name: c.Name, Groups: c.Groups})
	case RemoveItem:
		it, ok := s.Items[c.Contact]
		if !ok {
			return out, ErrNoItem
		}
		out.Unsubscribe = it.Subscription.to() || it.AskOut
		out.Unsubscribed = it.Subscription.from() || it.PendingIn
		return out, emit(TypeItemRemoved, ItemRemoved{Contact: c.Contact})
	case Presence:
		if c.Contact == owner {
			return out, ErrSelf
		}
		it, ok := s.Items[c.Contact]
		if !ok {
			it = Item{Contact: c.Contact, Subscription: None}
		}
		next := it
		to, from := it.Subscription.to(), it.Subscription.from()
		switch c.Stanza {
		case OutSubscribe:
			// Sent on even when redundant: the contact's server may have lost it.
			out.Forward = true
			if !to {
				next.AskOut = true
			}
		case InSubscribed:
			if it.AskOut {
				next.AskOut, to, out.Forward = false, true, true
			}
		case OutSubscribed:
			if it.PendingIn {
				next.PendingIn, from, out.Forward = false, true, true
			}
			// NOTSPEC(RFC 6121 §3.4): no pre-approvals; an approval nobody
			// asked for is ignored.
		case InSubscribe:
			switch {
			case from:
				out.AutoReply = true
			case !it.PendingIn:
				next.PendingIn, out.Forward = true, true
			}
		case OutUnsubscribe:
			if to || it.AskOut {
				to, next.AskOut, out.Forward = false, false, true
			}
		case InUnsubscribed:
			if to || it.AskOut {
				to, next.AskOut, out.Forward = false, false, true
			}
		case OutUnsubscribed:
			if from || it.PendingIn {
				from, next.PendingIn, out.Forward = false, false, true
			}
		case InUnsubscribe:
			if from || it.PendingIn {
				from, next.PendingIn, out.Forward = false, false, true
			}
		default:
			return out, fmt.Errorf("roster: unknown subscription stanza %q", c.Stanza)
		}
		next.Subscription = sub(to, from)
		if ok && next.Subscription == it.Subscription && next.AskOut == it.AskOut && next.PendingIn == it.PendingIn {
			return out, nil
		}
		if !ok && next.Subscription == None && !next.AskOut && !next.PendingIn {
			return out, nil // nothing to record for a stranger's unsubscribe
		}
		if !ok && s.full(c.MaxItems) {
			return Outcome{}, fmt.Errorf("%w: %d items", ErrFull, len(s.Items))
		}
		return out, emit(TypeSubscriptionChanged, SubscriptionChanged{Contact: c.Contact,
			Subscription: next.Subscription, AskOut: next.AskOut, PendingIn: next.PendingIn, Via: c.Stanza})
	}
	return out, fmt.Errorf("roster: unknown command %T", cmd)
}
