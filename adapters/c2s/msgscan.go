package c2s

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// Namespaces of the message payloads the server looks at.
const (
	nsStanzaID = "urn:xmpp:sid:0"
	nsHints    = "urn:xmpp:hints"
	nsCarbons  = "urn:xmpp:carbons:2"
	nsForward  = "urn:xmpp:forward:0"
	nsDelay    = "urn:xmpp:delay"
)

// msgInfo is what the server needs to know about a message's payload.
type msgInfo struct {
	inner   []byte // the children, without stanza-ids (XEP-0359) and occupant-ids (XEP-0421)
	body    bool   // a non-empty <body/>
	store   bool   // XEP-0334 <store/>
	noStore bool   // XEP-0334 <no-store/> or <no-permanent-store/>
	crypted bool   // an end-to-end encrypted payload (OMEMO, OpenPGP)
}

// archivable says whether the message goes into the archives: what a
// person would want to read back (a body, or an encrypted one), or what
// the sender asked to keep; never what it asked not to keep. Chat states,
// receipts and markers without a body are forked but not archived.
func (m msgInfo) archivable() bool {
	return (m.body || m.crypted || m.store) && !m.noStore
}

// encrypted payloads that stand for a body.
var encrypted = map[xml.Name]bool{
	{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}: true,
	{Space: "urn:xmpp:omemo:2", Local: "encrypted"}:               true,
	{Space: "urn:xmpp:openpgp:0", Local: "openpgp"}:               true,
	{Space: "jabber:x:encrypted", Local: "x"}:                     true,
}

// scanMessage reads the top-level children of a message. The children are
// parsed inside a wrapper that declares the prefixes the message element
// declared, so that a prefixed stanza-id is recognized as well.
func scanMessage(e *element) msgInfo {
	var head strings.Builder
	head.WriteString("<w xmlns='" + nsClient + "'")
	for _, a := range e.Attrs {
		if a.Name.Space == "xmlns" {
			head.WriteString(" xmlns:" + a.Name.Local + "='" + escape(a.Value) + "'")
		}
	}
	head.WriteString(">")
	off := int64(head.Len())
	doc := append(append([]byte(head.String()), e.Inner...), "</w>"...)
	d := xml.NewDecoder(bytes.NewReader(doc))
	var (
		m     msgInfo
		drop  [][2]int64 // byte ranges of Inner to remove
		depth int
		start int64
		cur   xml.Name
		text  bool
	)
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				start, cur, text = before, t.Name, false
				switch {
				case t.Name.Space == nsHints && t.Name.Local == "store":
					m.store = true
				case t.Name.Space == nsHints && (t.Name.Local == "no-store" || t.Name.Local == "no-permanent-store"):
					m.noStore = true
				case encrypted[t.Name]:
					m.crypted = true
				}
			}
		case xml.CharData:
			if depth == 2 && len(bytes.TrimSpace(t)) > 0 {
				text = true
			}
		case xml.EndElement:
			if depth == 2 {
				switch {
				case cur == xml.Name{Space: nsStanzaID, Local: "stanza-id"}, cur == xml.Name{Space: nsOccupantID, Local: "occupant-id"}:
					// Both are the server's to say (XEP-0359 §4, XEP-0421 §4).
					drop = append(drop, [2]int64{start - off, d.InputOffset() - off})
				case cur == xml.Name{Space: nsClient, Local: "body"} && text:
					m.body = true
				}
			}
			depth--
		}
	}
	if len(drop) == 0 {
		m.inner = e.Inner
		return m
	}
	var kept []byte
	last := int64(0)
	for _, r := range drop {
		kept = append(kept, e.Inner[last:r[0]]...)
		last = r[1]
	}
	m.inner = append(kept, e.Inner[last:]...)
	return m
}

// insertChild adds child as the last child of a stanza this package
// serialized (which always ends with an explicit end tag).
func insertChild(stanza, child string) string {
	i := strings.LastIndex(stanza, "</")
	if i < 0 {
		return stanza
	}
	return stanza[:i] + child + stanza[i:]
}

func stanzaIDXML(by, id string) string {
	return "<stanza-id xmlns='" + nsStanzaID + "' by='" + escape(by) + "' id='" + escape(id) + "'/>"
}

// carbon wraps a message for one of the account's other clients (XEP-0280):
// kind is "sent" or "received".
func carbon(kind, account, to, typ, inner string) string {
	return "<message xmlns='" + nsClient + "' from='" + escape(account) + "' to='" + escape(to) + "' type='" + escape(typ) + "'><" +
		kind + " xmlns='" + nsCarbons + "'><forwarded xmlns='" + nsForward + "'>" + inner + "</forwarded></" + kind + "></message>"
}
