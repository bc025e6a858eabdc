package c2s

import (
	"fmt"

	"annals.im/annals/adapters/stanza"
)

// Namespaces of RFC 6120 and the XEPs this package answers.
const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = stanza.NSClient
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas = stanza.NSStanzas
	nsPing    = "urn:xmpp:ping"
	nsDisco   = "http://jabber.org/protocol/disco#info"
	nsItems   = "http://jabber.org/protocol/disco#items"
	nsVersion = "jabber:iq:version"

	nsStanzaID = stanza.NSStanzaID
	nsCarbons  = stanza.NSCarbons
	nsForward  = stanza.NSForward
	nsDelay    = stanza.NSDelay
	nsData     = "jabber:x:data"
	// nsArchiveID advertises, on the account, that the sender's archive ID
	// of a message is "<session id>:<message id>" (see README).
	nsArchiveID = "https://annals.im/protocol/archive-id"
)

// element is a stanza as read from the stream.
type element = stanza.Element

// streamError is an RFC 6120 §4.9 stream error condition.
type streamError struct {
	cond string
	text string
}

func (e *streamError) Error() string {
	if e.text == "" {
		return "stream error: " + e.cond
	}
	return fmt.Sprintf("stream error: %s (%s)", e.cond, e.text)
}

func (e *streamError) xml() string {
	s := `<stream:error><` + e.cond + ` xmlns='` + nsStreams + `'/>`
	if e.text != "" {
		s += `<text xmlns='` + nsStreams + `'>` + stanza.Escape(e.text) + `</text>`
	}
	return s + `</stream:error>`
}
