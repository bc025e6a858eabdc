package c2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"annals.im/annals/domain/wellformed"
)

// Namespaces of RFC 6120 and the XEPs this package answers.
const (
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSession = "urn:ietf:params:xml:ns:xmpp-session"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsPing    = "urn:xmpp:ping"
	nsDisco   = "http://jabber.org/protocol/disco#info"
	nsItems   = "http://jabber.org/protocol/disco#items"
	nsVersion = "jabber:iq:version"
)

// element is one top-level element of a stream, kept as it came so that it
// can be routed without a round trip through Go structs.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   []byte     `xml:",innerxml"`
}

func (e *element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && (a.Name.Space == "" || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// child returns the first child element of e, decoded, or false.
func (e *element) child() (element, bool) {
	kids := children(*e)
	if len(kids) == 0 {
		return element{}, false
	}
	return kids[0], true
}

// children decodes the child elements of e. Inner is decoded on its own,
// so a child that declares no namespace gets e's default one, as it
// would in the stream (XML namespaces are inherited).
func children(e element) []element {
	var out []element
	d := xml.NewDecoder(bytes.NewReader(e.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return out
		}
		if start, ok := tok.(xml.StartElement); ok {
			var c element
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

// defaultNS is the default namespace e's children inherit.
func (e *element) defaultNS() string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value
		}
	}
	return e.XMLName.Space
}

// errTooBig: a stanza went past the configured maximum size.
var errTooBig = errors.New("c2s: stanza too big")

// limitReader counts the bytes read since the last reset and fails once
// they pass max: the decoder reads ahead by at most its buffer, so the
// limit holds to within a few KiB.
type limitReader struct {
	r   io.Reader
	n   int
	max int
	err error // what the connection returned, e.g. io.EOF when the client hung up
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, errTooBig
	}
	n, err := l.r.Read(p)
	l.n += n
	if err != nil {
		l.err = err
	}
	return n, err
}

func (l *limitReader) reset() { l.n = 0 }

// escape returns s escaped for an XML attribute or text.
func escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

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
		s += `<text xmlns='` + nsStreams + `'>` + escape(e.text) + `</text>`
	}
	return s + `</stream:error>`
}

// toFrom writes to/from attributes for a reply, omitting empty ones.
func toFrom(to, from string) string {
	s := ""
	if to != "" {
		s += " to='" + escape(to) + "'"
	}
	if from != "" {
		s += " from='" + escape(from) + "'"
	}
	return s
}

// ownAttrs returns a stanza's attributes without its namespace
// declarations: its Inner is re-serialized to declare what it uses, so
// the declarations mean nothing any more.
func ownAttrs(attrs []xml.Attr) []xml.Attr {
	out := attrs[:0:0]
	for _, a := range attrs {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		out = append(out, a)
	}
	return out
}

// parseElement reads one element from b as a stream's stanza is read,
// with the stream's default namespace jabber:client: for stored stanzas
// and tests.
func parseElement(b []byte, maxDepth int) (*element, error) {
	d := wellformed.NewDecoder(io.MultiReader(strings.NewReader("<s xmlns='"+nsClient+"'>"), bytes.NewReader(b), strings.NewReader("</s>")), maxDepth+1)
	var e *element
	closed := false // the wrapper ended: nothing may follow
	for {
		tok, err := d.Token()
		if err == nil && closed {
			err = errors.New("c2s: input after the element")
		}
		if err != nil {
			if err == io.EOF && e != nil {
				return e, nil
			}
			if err == io.EOF {
				err = errors.New("c2s: no element")
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if d.Depth() == 1 {
				continue
			}
			if e != nil {
				return nil, errors.New("c2s: more than one element")
			}
			var inner bytes.Buffer
			if err := d.WriteInner(&inner, t); err != nil {
				return nil, err
			}
			e = &element{XMLName: t.Name, Attrs: ownAttrs(t.Attr), Inner: inner.Bytes()}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("c2s: text beside the element")
			}
		case xml.EndElement:
			closed = d.Depth() == 0
		default:
			return nil, &wellformed.Error{Cond: wellformed.RestrictedXML, Msg: "only one element is allowed"}
		}
	}
}
