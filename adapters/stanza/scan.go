package stanza

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// MessageInfo is what the server needs to know about a message's payload.
type MessageInfo struct {
	Inner   []byte // the children, without stanza-ids (XEP-0359) and occupant-ids (XEP-0421)
	Body    bool   // a non-empty <body/>
	Store   bool   // XEP-0334 <store/>
	NoStore bool   // XEP-0334 <no-store/> or <no-permanent-store/>
	Crypted bool   // an end-to-end encrypted payload (OMEMO, OpenPGP)
}

// Archivable says whether the message goes into the archives: what a
// person would want to read back (a body, or an encrypted one), or what
// the sender asked to keep; never what it asked not to keep. Chat states,
// receipts and markers without a body are forked but not archived.
func (m MessageInfo) Archivable() bool {
	return (m.Body || m.Crypted || m.Store) && !m.NoStore
}

// encrypted payloads that stand for a body.
var encrypted = map[xml.Name]bool{
	{Space: "eu.siacs.conversations.axolotl", Local: "encrypted"}: true,
	{Space: "urn:xmpp:omemo:2", Local: "encrypted"}:               true,
	{Space: "urn:xmpp:openpgp:0", Local: "openpgp"}:               true,
	{Space: "jabber:x:encrypted", Local: "x"}:                     true,
}

// ScanMessage reads the top-level children of a message from a client,
// and drops its stanza-ids and occupant-ids: both are the server's to say
// (XEP-0359 §4, XEP-0421 §4).
func ScanMessage(e *Element) MessageInfo { return scanMessage(e, nil) }

// ScanRemoteMessage is ScanMessage for a message from another server: it
// drops only the stanza-ids by one of ours (ours(by)), which this server
// alone gives; the others, and occupant-ids, are the remote server's and
// its rooms' to say (a message from a room there carries the room's).
func ScanRemoteMessage(e *Element, ours func(by string) bool) MessageInfo {
	return scanMessage(e, ours)
}

// scanMessage reads the children (topLevel). ours nil drops every
// stanza-id and occupant-id.
func scanMessage(e *Element, ours func(by string) bool) MessageInfo {
	var (
		m    MessageInfo
		drop [][2]int64 // byte ranges of Inner to remove
	)
	topLevel(e, NSClient, func(c child) {
		name := c.start.Name
		by := ""
		for _, a := range c.start.Attr {
			if a.Name.Space == "" && a.Name.Local == "by" {
				by = a.Value
			}
		}
		switch {
		case name.Space == NSHints && name.Local == "store":
			m.Store = true
		case name.Space == NSHints && (name.Local == "no-store" || name.Local == "no-permanent-store"):
			m.NoStore = true
		case encrypted[name]:
			m.Crypted = true
		case name == xml.Name{Space: NSStanzaID, Local: "stanza-id"} && (ours == nil || ours(by)),
			name == xml.Name{Space: NSOccupantID, Local: "occupant-id"} && ours == nil:
			drop = append(drop, [2]int64{c.begin, c.end})
		case name == xml.Name{Space: NSClient, Local: "body"} && c.text:
			m.Body = true
		}
	})
	m.Inner = without(e.Inner, drop)
	return m
}

// WithoutChildren returns e's children, as Inner holds them, without the
// top-level ones called name (a payload the server consumes and does not
// hand on, e.g. DMUC3's sequence element).
func WithoutChildren(e *Element, name xml.Name) []byte {
	var drop [][2]int64
	topLevel(e, e.defaultNS(), func(c child) {
		if c.start.Name == name {
			drop = append(drop, [2]int64{c.begin, c.end})
		}
	})
	return without(e.Inner, drop)
}

// child is a top-level child of an element, as topLevel reads it.
type child struct {
	start      xml.StartElement
	begin, end int64 // its bytes in Inner
	text       bool  // non-space text directly inside it
}

// topLevel calls visit with each top-level child of e, in order. The
// children are parsed inside a wrapper in namespace ns that declares the
// prefixes e declared, so that a prefixed child is recognised too.
func topLevel(e *Element, ns string, visit func(child)) {
	var head strings.Builder
	head.WriteString("<w xmlns='" + Escape(ns) + "'")
	for _, a := range e.Attrs {
		if a.Name.Space == "xmlns" {
			head.WriteString(" xmlns:" + a.Name.Local + "='" + Escape(a.Value) + "'")
		}
	}
	head.WriteString(">")
	off := int64(head.Len())
	d := xml.NewDecoder(bytes.NewReader(append(append([]byte(head.String()), e.Inner...), "</w>"...)))
	var (
		depth int
		cur   child
	)
	for {
		before := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				cur = child{start: t.Copy(), begin: before - off}
			}
		case xml.CharData:
			if depth == 2 && len(bytes.TrimSpace(t)) > 0 {
				cur.text = true
			}
		case xml.EndElement:
			if depth == 2 {
				cur.end = d.InputOffset() - off
				visit(cur)
			}
			depth--
		}
	}
}

// without is inner without the byte ranges drop, in order.
func without(inner []byte, drop [][2]int64) []byte {
	if len(drop) == 0 {
		return inner
	}
	var kept []byte
	last := int64(0)
	for _, r := range drop {
		kept = append(kept, inner[last:r[0]]...)
		last = r[1]
	}
	return append(kept, inner[last:]...)
}
