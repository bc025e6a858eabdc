package stanza

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// Namespaces of the payloads the server writes or looks at in messages.
const (
	NSStanzaID   = "urn:xmpp:sid:0"
	NSOccupantID = "urn:xmpp:occupant-id:0"
	NSHints      = "urn:xmpp:hints"
	NSCarbons    = "urn:xmpp:carbons:2"
	NSForward    = "urn:xmpp:forward:0"
	NSDelay      = "urn:xmpp:delay"
)

// The helpers below splice stanzas this server serialized (from an
// Element, or written here): a stanza is routed to many sessions, and
// re-encoding it for each was the cost that mattered (BenchmarkMUC). They
// rely on the form such stanzas have: single-quoted attributes, an
// explicit end tag. FuzzRestamp and FuzzScanMessage hold them to it.

// Restamp serializes e with from replaced by the sender's full JID. Inner
// is as the stream reader re-serialized it, so it declares every
// namespace it uses and needs nothing from e's attributes.
func Restamp(e *Element, from string) string {
	var b strings.Builder
	// The namespace is explicit, so the copy stays a jabber:client stanza
	// when it is forwarded inside another element (XEP-0297).
	b.WriteString("<" + e.XMLName.Local + " xmlns='" + NSClient + "'")
	for _, a := range e.Attrs {
		if a.Name.Space == "" && (a.Name.Local == "from" || a.Name.Local == "xmlns") {
			continue
		}
		name := a.Name.Local
		switch a.Name.Space {
		case "":
		case "xml", NSXML:
			name = "xml:" + name
		default:
			continue // other namespaced attributes are dropped rather than guessed at
		}
		b.WriteString(" " + name + "='" + Escape(a.Value) + "'")
	}
	b.WriteString(" from='" + Escape(from) + "'>")
	b.Write(e.Inner)
	b.WriteString("</" + e.XMLName.Local + ">")
	return b.String()
}

// WithTo sets the to attribute of a stanza this server serialized.
func WithTo(stanza, to string) string {
	stanza = WithoutTo(stanza)
	end := strings.IndexByte(stanza, '>')
	if end < 0 {
		return stanza
	}
	head := stanza[:end]
	selfClosing := strings.HasSuffix(head, "/")
	head = strings.TrimSuffix(head, "/")
	head += " to='" + Escape(to) + "'"
	if selfClosing {
		head += "/"
	}
	return head + stanza[end:]
}

// WithoutTo removes the to attribute of a stanza this server serialized.
func WithoutTo(stanza string) string {
	end := strings.IndexByte(stanza, '>')
	if end < 0 {
		return stanza
	}
	head := stanza[:end]
	if i := strings.Index(head, " to='"); i >= 0 {
		j := strings.IndexByte(head[i+5:], '\'')
		return head[:i] + head[i+5+j+1:] + stanza[end:]
	}
	return stanza
}

// WithID sets the id of a stanza this server serialized without one, if
// id is given.
func WithID(stanza, id string) string {
	if id == "" {
		return stanza
	}
	i := strings.IndexAny(stanza, " >")
	return stanza[:i] + " id='" + Escape(id) + "'" + stanza[i:]
}

// InsertChild adds child as the last child of a stanza this server
// serialized (which always ends with an explicit end tag).
func InsertChild(stanza, child string) string {
	i := strings.LastIndex(stanza, "</")
	if i < 0 {
		return stanza
	}
	return stanza[:i] + child + stanza[i:]
}

// IDElement is a stanza-id (XEP-0359) given by the archive of by.
func IDElement(by, id string) string {
	return "<stanza-id xmlns='" + NSStanzaID + "' by='" + Escape(by) + "' id='" + Escape(id) + "'/>"
}

// Carbon wraps a message for one of the account's other clients
// (XEP-0280): kind is "sent" or "received".
func Carbon(kind, account, to, typ, inner string) string {
	return "<message xmlns='" + NSClient + "' from='" + Escape(account) + "' to='" + Escape(to) + "' type='" + Escape(typ) + "'><" +
		kind + " xmlns='" + NSCarbons + "'><forwarded xmlns='" + NSForward + "'>" + inner + "</forwarded></" + kind + "></message>"
}

// ToFrom writes to and from attributes for an answer, omitting empty ones.
func ToFrom(to, from string) string {
	s := ""
	if to != "" {
		s += " to='" + Escape(to) + "'"
	}
	if from != "" {
		s += " from='" + Escape(from) + "'"
	}
	return s
}

// Stamp formats t as XEP-0082 date-time, as delays and archives carry it.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// NewID returns 16 random hex digits, for stream and stanza ids.
func NewID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
