package mux

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// Dest is where an IQ is addressed, as the server sees it.
type Dest int

const (
	// Server: the server's own domain, or no to at all.
	Server Dest = iota
	// Account: the sender's own bare JID; the server answers on the
	// account's behalf (RFC 6121 §8.5.1).
	Account
	// Contact: another local account's bare JID, asked by someone the
	// account shares its presence with (a From or Both subscription): the
	// server answers on that account's behalf (RFC 6121 §8.5.1); anyone
	// else gets service-unavailable, as if there were no such account.
	Contact
	// Anyone: another local account's bare JID, asked by anyone, after
	// Contact for a contact: the handler decides what the asker may see
	// (a PEP node's access model, XEP-0060 §4.5; a vCard is anyone's,
	// XEP-0054 §5); it must not tell a stranger more than that the account
	// has such a node.
	Anyone
	dests
)

func (d Dest) String() string {
	switch d {
	case Server:
		return "server"
	case Account:
		return "account"
	case Contact:
		return "contact"
	case Anyone:
		return "anyone"
	}
	return fmt.Sprintf("Dest(%d)", int(d))
}

// Session is the client session an IQ came from, as a feature sees it.
type Session interface {
	// JID is the session's bound full JID: the sender, whatever from the
	// client wrote (RFC 6120 §8.1.2.1).
	JID() jid.JID
	// Send queues a stanza to the client, after everything queued before:
	// answers, and errors.
	Send(stanza string)
	// SendAll sends stanzas as Send does, in order and in one write (a
	// page of results and its answer).
	SendAll(stanzas []string)
	// Deliver queues a stanza that is no answer (a message, a presence from
	// elsewhere). While the client says it is inactive (XEP-0352) one
	// that is not urgent may be held back, a newer presence from the same
	// entity replacing the one held.
	Deliver(stanza string, urgent bool)
}

// IQ is an IQ get or set being handled.
type IQ struct {
	Stanza  *stanza.Element // the iq
	Payload stanza.Element  // its child, whose namespace chose the handler
	Session Session
	// From is the address the answer comes from: the one the IQ was sent
	// to ("" when it had none).
	From     string
	answered bool
}

// Type is the IQ's type: get or set.
func (iq *IQ) Type() string { return iq.Stanza.Attr("type") }

// Result answers the IQ with payload, serialized ("" for an empty result).
func (iq *IQ) Result(payload string) {
	iq.answered = true
	iq.Session.Send("<iq type='result' id='" + stanza.Escape(iq.Stanza.Attr("id")) + "'" + iq.addresses() + ">" + payload + "</iq>")
}

// Answered records that the handler answered the IQ with a stanza it
// built and sent itself: the mux sends nothing more.
func (iq *IQ) Answered() { iq.answered = true }

// fail answers the IQ with a stanza error.
func (iq *IQ) fail(e *stanza.Error) {
	iq.answered = true
	iq.Session.Send("<iq type='error' id='" + stanza.Escape(iq.Stanza.Attr("id")) + "'" + iq.addresses() + ">" + e.XML() + "</iq>")
}

func (iq *IQ) addresses() string {
	s := " to='" + stanza.Escape(iq.Session.JID().String()) + "'"
	if iq.From != "" {
		s += " from='" + stanza.Escape(iq.From) + "'"
	}
	return s
}

// Handler answers the IQs of one namespace: with iq.Result, or by
// returning an error: a *stanza.Error is sent as it is, any other error
// as internal-server-error (and given to the caller of Serve to log).
type Handler func(ctx context.Context, iq *IQ) error

// Identity is a disco#info identity (XEP-0030 §3.1).
type Identity struct{ Category, Type, Name string }

// Item is a disco#items item (XEP-0030 §4.1): an entity, or one of its
// nodes (§4.2).
type Item struct{ JID, Node, Name string }

type key struct {
	dest Dest
	ns   string
}

// Mux holds the registrations.
type Mux struct {
	handlers   map[key]Handler
	features   [dests][]string
	identities [dests][]Identity
	items      [dests][]Item
	services   map[string]Service // by domain
	mounted    []Service          // the same, in the order mounted
	available  []func(ctx context.Context, s Session)
	presence   []PresenceChild
	nodes      [dests][]NodeDisco
}

// PresenceChild says what the server adds to an account's available
// presence (a broadcast one, or one directed to a local entity) on its
// behalf: a child element, serialized, or "" for none. presence is the
// stanza as the client sent it, for a feature to leave alone what the
// client said itself (XEP-0153's avatar hash, say). It runs for every
// such presence: it must be cheap.
type PresenceChild func(ctx context.Context, account string, presence *stanza.Element) string

// AddPresenceChild registers f.
func (m *Mux) AddPresenceChild(f PresenceChild) { m.presence = append(m.presence, f) }

// PresenceChildren returns the registered PresenceChild functions, in
// the order registered.
func (m *Mux) PresenceChildren() []PresenceChild { return m.presence }

// New returns an empty Mux.
func New() *Mux { return &Mux{handlers: make(map[key]Handler)} }

// Handle makes h answer IQ gets and sets whose payload is in namespace ns
// sent to d, and advertises features there (ns itself is not implied:
// some namespaces are not features). Registering a namespace twice on one
// destination is a wiring mistake and panics, as http.ServeMux does.
func (m *Mux) Handle(d Dest, ns string, h Handler, features ...string) {
	k := key{d, ns}
	if _, dup := m.handlers[k]; dup {
		panic(fmt.Sprintf("mux: %s already handles %s", d, ns))
	}
	m.handlers[k] = h
	m.Feature(d, features...)
}

// Feature advertises features at d that need no IQ handler of their own
// (they live in the stream or in messages, e.g. carbons).
func (m *Mux) Feature(d Dest, features ...string) {
	for _, f := range features {
		if !slices.Contains(m.features[d], f) {
			m.features[d] = append(m.features[d], f)
		}
	}
}

// Identity adds a disco#info identity at d.
func (m *Mux) Identity(d Dest, id Identity) { m.identities[d] = append(m.identities[d], id) }

// Item lists an entity in d's disco#items, e.g. a service on its own
// domain.
func (m *Mux) Item(d Dest, it Item) { m.items[d] = append(m.items[d], it) }

// Features returns what d advertises, sorted.
func (m *Mux) Features(d Dest) []string {
	return slices.Sorted(slices.Values(m.features[d]))
}

// Identities returns d's identities, sorted by category and type.
func (m *Mux) Identities(d Dest) []Identity {
	out := slices.Clone(m.identities[d])
	slices.SortFunc(out, func(a, b Identity) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Type, b.Type))
	})
	return out
}

// Items returns d's items in the order registered.
func (m *Mux) Items(d Dest) []Item { return slices.Clone(m.items[d]) }

// Serve runs the handler registered for iq's payload at d. handled is
// false when there is none: the caller decides what else the IQ may be.
// An error a handler returns that is not a stanza error is returned, for
// the caller to log; the IQ has been answered internal-server-error.
func (m *Mux) Serve(ctx context.Context, d Dest, iq *IQ) (handled bool, err error) {
	h, ok := m.handlers[key{d, iq.Payload.XMLName.Space}]
	if !ok {
		return false, nil
	}
	err = h(ctx, iq)
	var se *stanza.Error
	switch {
	case err == nil && !iq.answered:
		err = fmt.Errorf("mux: the %s handler of %s returned without answering", d, iq.Payload.XMLName.Space)
		iq.fail(stanza.ErrorOf(err))
	case err == nil:
	case errors.As(err, &se):
		if !iq.answered {
			iq.fail(se)
		}
		err = nil
	default:
		if !iq.answered {
			iq.fail(stanza.ErrorOf(err))
		}
	}
	return true, err
}
