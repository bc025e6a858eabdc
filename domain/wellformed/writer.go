package wellformed

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteInner reads the content of the element whose start tag Token just
// returned, through its end tag, and appends the content (not the end
// tag) to b re-serialized: child
// elements that are not in start's namespace declare theirs, so the
// fragment means the same inside any element of start's namespace.
// Comments, processing instructions and DOCTYPEs are refused
// (RFC 6120 §11.1), as is anything that is not namespace-well-formed; b
// then holds part of the content and must be dropped.
func (d *Decoder) WriteInner(b *bytes.Buffer, start xml.StartElement) error {
	level := d.Depth()
	defaults := []string{start.Name.Space} // the default namespace in each open element
	var open []string                      // local names of the open children
	pending := false                       // a start tag is open for attributes: '>' or '/>' is due
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return notWellFormed("the input ended inside an element")
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if pending {
				b.WriteByte('>')
			}
			writeStart(b, t, defaults[len(defaults)-1])
			defaults = append(defaults, t.Name.Space)
			open = append(open, t.Name.Local)
			pending = true
		case xml.EndElement:
			if d.Depth() < level {
				return nil
			}
			if pending {
				b.WriteString("/>")
				pending = false
			} else {
				b.WriteString("</" + open[len(open)-1] + ">")
			}
			defaults, open = defaults[:len(defaults)-1], open[:len(open)-1]
		case xml.CharData:
			if pending {
				b.WriteByte('>')
				pending = false
			}
			escapeText(b, t)
		case xml.Comment, xml.ProcInst, xml.Directive:
			return &Error{Cond: RestrictedXML, Msg: "comments, processing instructions and DTDs are not allowed (RFC 6120 §11.1)"}
		}
	}
}

// writeStart writes an element's start tag without its closing '>'.
func writeStart(b *bytes.Buffer, t xml.StartElement, parentDefault string) {
	b.WriteByte('<')
	b.WriteString(t.Name.Local)
	if t.Name.Space != parentDefault {
		b.WriteString(" xmlns='")
		escapeAttr(b, t.Name.Space)
		b.WriteByte('\'')
	}
	var prefixes []string // namespaces of attributes, prefixed ns0, ns1, … on this element
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue // declarations are rewritten, not copied
		}
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case XMLNamespace:
			b.WriteString("xml:")
		default:
			i := slices.Index(prefixes, a.Name.Space)
			if i < 0 {
				i = len(prefixes)
				prefixes = append(prefixes, a.Name.Space)
				b.WriteString("xmlns:ns" + strconv.Itoa(i) + "='")
				escapeAttr(b, a.Name.Space)
				b.WriteString("' ")
			}
			b.WriteString("ns" + strconv.Itoa(i) + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString("='")
		escapeAttr(b, a.Value)
		b.WriteByte('\'')
	}
}

// escaped returns the reference written for c, or "" where c stands for
// itself. In text, \r is a reference because a parser turns a literal one
// into \n (XML 1.0 §2.11). In an attribute in single quotes, the quotes
// are references too, and so is white space other than ' ', which
// attribute-value normalization (§3.3.3) would turn into spaces.
func escaped(c byte, attr bool) string {
	switch c {
	case '&':
		return "&amp;"
	case '<':
		return "&lt;"
	case '>':
		return "&gt;"
	case '\r':
		return "&#xD;"
	}
	if !attr {
		return ""
	}
	switch c {
	case '\'':
		return "&apos;"
	case '"':
		return "&quot;"
	case '\t':
		return "&#x9;"
	case '\n':
		return "&#xA;"
	}
	return ""
}

// escapeText writes character data escaped.
func escapeText(b *bytes.Buffer, s []byte) {
	last := 0
	for i, c := range s {
		if esc := escaped(c, false); esc != "" {
			b.Write(s[last:i])
			b.WriteString(esc)
			last = i + 1
		}
	}
	b.Write(s[last:])
}

// escapeAttr writes an attribute value escaped for single quotes.
func escapeAttr(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		if esc := escaped(s[i], true); esc != "" {
			b.WriteString(s[last:i])
			b.WriteString(esc)
			last = i + 1
		}
	}
	b.WriteString(s[last:])
}

// Canonical re-serializes one element given as a string (a stanza as
// stored), with an explicit end tag, or refuses it with an *Error.
// Leading and trailing white space is allowed; nothing else beside the
// element.
func Canonical(s string) (string, error) {
	d := NewDecoder(strings.NewReader(s), 0)
	var b bytes.Buffer
	b.Grow(len(s) + 32)
	seen := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if !seen {
				return "", notWellFormed("no element")
			}
			return b.String(), nil
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if seen {
				return "", notWellFormed("more than one element")
			}
			seen = true
			writeStart(&b, t, "")
			b.WriteByte('>')
			if err := d.WriteInner(&b, t); err != nil {
				return "", err
			}
			b.WriteString("</" + t.Name.Local + ">")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return "", notWellFormed("text outside the element")
			}
		default:
			return "", &Error{Cond: RestrictedXML, Msg: "only one element is allowed"}
		}
	}
}

// Salvage returns Canonical(s) or, where the content is refused, the root
// element alone, re-serialized with its attributes and without content;
// "" where not even that reads. It is for XML stored before the way in
// was guarded: a replayed message keeps its envelope and loses what no
// client could parse.
func Salvage(s string) string {
	if c, err := Canonical(s); err == nil {
		return c
	}
	d := NewDecoder(strings.NewReader(s), 0)
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var b bytes.Buffer
			writeStart(&b, t, "")
			b.WriteString("></" + t.Name.Local + ">")
			return b.String()
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return ""
			}
		default:
			return ""
		}
	}
}
