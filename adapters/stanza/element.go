package stanza

import (
	"bytes"
	"encoding/xml"
	"strings"
)

// Namespaces every part of the server uses.
const (
	NSClient  = "jabber:client"
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Element is one top-level element of a stream (or one of its children),
// kept as it came: Inner is as the stream reader re-serialized it
// (wellformed.WriteInner), declaring every namespace it uses.
type Element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

// NSXML is the namespace the xml: prefix is bound to.
const NSXML = "http://www.w3.org/XML/1998/namespace"

// Attr returns the value of the attribute without a namespace (or in
// xml:, e.g. xml:lang) called name, or "".
func (e *Element) Attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && (a.Name.Space == "" || a.Name.Space == "xml" || a.Name.Space == NSXML) {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child element of e, or false.
func (e *Element) Child() (Element, bool) {
	kids := e.Children()
	if len(kids) == 0 {
		return Element{}, false
	}
	return kids[0], true
}

// Children decodes the child elements of e. Inner is decoded on its own,
// so a child that declares no namespace gets e's default one, as it would
// in the stream (XML namespaces are inherited).
func (e *Element) Children() []Element {
	var out []Element
	d := xml.NewDecoder(bytes.NewReader(e.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		if start, ok := tok.(xml.StartElement); ok {
			var c Element
			if err := d.DecodeElement(&c, &start); err != nil {
				return out
			}
			if c.XMLName.Space == "" {
				c.XMLName.Space = e.defaultNS()
			}
			out = append(out, c)
		}
	}
}

// Named returns e's first child with that name.
func (e *Element) Named(space, local string) (Element, bool) {
	for _, ch := range e.Children() {
		if ch.XMLName.Space == space && ch.XMLName.Local == local {
			return ch, true
		}
	}
	return Element{}, false
}

// ChildText returns the trimmed text of e's first child called local,
// in whatever namespace.
func (e *Element) ChildText(local string) string {
	for _, ch := range e.Children() {
		if ch.XMLName.Local == local {
			return strings.TrimSpace(ch.Text())
		}
	}
	return ""
}

// Text returns the character data directly inside e, unescaped.
func (e *Element) Text() string {
	var b strings.Builder
	d := xml.NewDecoder(bytes.NewReader(e.Inner))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return b.String()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				b.Write(t)
			}
		}
	}
}

// defaultNS is the default namespace e's children inherit.
func (e *Element) defaultNS() string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value
		}
	}
	return e.XMLName.Space
}

// Escape returns s escaped for an XML attribute or text.
func Escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
