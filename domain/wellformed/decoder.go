package wellformed

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// The namespaces bound by the XML specifications themselves.
const (
	XMLNamespace   = "http://www.w3.org/XML/1998/namespace"
	xmlnsNamespace = "http://www.w3.org/2000/xmlns/"
)

// Conditions of an *Error, named as RFC 6120 §4.9.3 names stream errors.
const (
	NotWellFormed  = "not-well-formed"
	RestrictedXML  = "restricted-xml"
	PolicyViolated = "policy-violation"
)

// Error is input this package refuses. Cond is the RFC 6120 stream error
// condition that fits it.
type Error struct {
	Cond string
	Msg  string
}

func (e *Error) Error() string { return "wellformed: " + e.Cond + ": " + e.Msg }

func notWellFormed(msg string) error { return &Error{Cond: NotWellFormed, Msg: msg} }

// DefaultMaxDepth bounds element nesting when a Decoder is given no limit:
// the deepest stanzas in use (a MAM result forwarding a carbon) nest about
// ten levels.
const DefaultMaxDepth = 64

// Decoder reads tokens as encoding/xml's Token does, with names resolved
// to namespaces, and refuses what is not namespace-well-formed. The
// declarations an element makes stay in its StartElement's Attr with
// encoding/xml's conventions ({Space: "xmlns", Local: prefix} and
// {Local: "xmlns"}); every other name is resolved.
type Decoder struct {
	d        *xml.Decoder
	maxDepth int
	stack    []frame
	err      error // sticky: after an error the input cannot be trusted
}

type frame struct {
	raw   xml.Name  // as written, to match the end tag
	binds []binding // declarations made on this element
}

type binding struct{ prefix, uri string }

// NewDecoder reads from r with nesting limited to maxDepth elements
// (DefaultMaxDepth when maxDepth <= 0).
func NewDecoder(r io.Reader, maxDepth int) *Decoder {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	d := xml.NewDecoder(r)
	d.Strict = true
	return &Decoder{d: d, maxDepth: maxDepth}
}

// Depth is the number of elements open.
func (d *Decoder) Depth() int { return len(d.stack) }

// InputOffset is the input offset of the decoder's position.
func (d *Decoder) InputOffset() int64 { return d.d.InputOffset() }

// Token returns the next token. A *Error reports input that is not
// namespace-well-formed; errors of the underlying reader come back
// unchanged (an *xml.SyntaxError becomes a *Error).
func (d *Decoder) Token() (xml.Token, error) {
	if d.err != nil {
		return nil, d.err
	}
	tok, err := d.token()
	if err != nil {
		d.err = err
	}
	return tok, err
}

func (d *Decoder) token() (xml.Token, error) {
	tok, err := d.d.RawToken()
	if err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, notWellFormed(se.Msg)
		}
		return nil, err
	}
	switch t := tok.(type) {
	case xml.StartElement:
		return d.start(t)
	case xml.EndElement:
		return d.end(t)
	}
	return tok, nil
}

func (d *Decoder) start(t xml.StartElement) (xml.Token, error) {
	if len(d.stack) >= d.maxDepth {
		return nil, &Error{Cond: PolicyViolated, Msg: "elements nested too deeply"}
	}
	if err := checkLocal(t.Name.Local); err != nil {
		return nil, err
	}
	if t.Name.Space == "xmlns" {
		return nil, notWellFormed("an element may not have the prefix xmlns")
	}
	f := frame{raw: t.Name}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if err := f.bind("", a.Value); err != nil {
				return nil, err
			}
		case a.Name.Space == "xmlns":
			if err := checkLocal(a.Name.Local); err != nil {
				return nil, err
			}
			if err := f.bind(a.Name.Local, a.Value); err != nil {
				return nil, err
			}
		}
	}
	d.stack = append(d.stack, f)
	out := xml.StartElement{Attr: make([]xml.Attr, 0, len(t.Attr))}
	var err error
	if out.Name, err = d.resolve(t.Name, true); err != nil {
		return nil, err
	}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			out.Attr = append(out.Attr, a)
			continue
		}
		if err := checkLocal(a.Name.Local); err != nil {
			return nil, err
		}
		n, err := d.resolve(a.Name, false)
		if err != nil {
			return nil, err
		}
		out.Attr = append(out.Attr, xml.Attr{Name: n, Value: a.Value})
	}
	if err := unique(out.Attr); err != nil {
		return nil, err
	}
	return out, nil
}

// bind records a namespace declaration, refusing what Namespaces in XML
// 1.0 §3 forbids.
func (f *frame) bind(prefix, uri string) error {
	for _, b := range f.binds {
		if b.prefix == prefix {
			return notWellFormed("namespace declared twice on one element")
		}
	}
	switch {
	case prefix == "xmlns":
		return notWellFormed("the prefix xmlns may not be declared")
	case prefix == "xml" && uri != XMLNamespace, prefix != "xml" && uri == XMLNamespace:
		return notWellFormed("the prefix xml is bound to its namespace only")
	case uri == xmlnsNamespace:
		return notWellFormed("the xmlns namespace may not be declared")
	case uri == "xmlns" || uri == "xml":
		// Not URIs, and they would read as encoding/xml's conventions
		// for declarations and xml: attributes.
		return notWellFormed("the namespace names xml and xmlns are reserved")
	case prefix != "" && uri == "":
		return notWellFormed("a prefix may not be bound to the empty namespace")
	}
	f.binds = append(f.binds, binding{prefix, uri})
	return nil
}

// resolve maps a raw name to its namespace. Unprefixed attributes are in
// no namespace; unprefixed elements are in the default one.
func (d *Decoder) resolve(n xml.Name, element bool) (xml.Name, error) {
	switch {
	case n.Space == "" && !element:
		return n, nil
	case n.Space == "xml":
		return xml.Name{Space: XMLNamespace, Local: n.Local}, nil
	}
	for i := len(d.stack) - 1; i >= 0; i-- {
		for _, b := range d.stack[i].binds {
			if b.prefix == n.Space {
				return xml.Name{Space: b.uri, Local: n.Local}, nil
			}
		}
	}
	if n.Space == "" {
		return n, nil // no default namespace declared
	}
	return xml.Name{}, notWellFormed("undeclared namespace prefix " + clip(n.Space))
}

func (d *Decoder) end(t xml.EndElement) (xml.Token, error) {
	if len(d.stack) == 0 {
		return nil, notWellFormed("end tag without a start tag")
	}
	top := d.stack[len(d.stack)-1]
	if t.Name != top.raw {
		return nil, notWellFormed("end tag does not match its start tag")
	}
	n, err := d.resolve(t.Name, true)
	if err != nil {
		return nil, err
	}
	d.stack = d.stack[:len(d.stack)-1]
	return xml.EndElement{Name: n}, nil
}

// checkLocal refuses local names that are not NCNames. encoding/xml
// checks a qualified name as a whole, so it takes "a:", ":a" and "p:0a"
// (whose local part may not start with a digit).
func checkLocal(s string) error {
	if s == "" || strings.IndexByte(s, ':') >= 0 {
		return notWellFormed("a name may hold at most one colon, between prefix and local name")
	}
	if !nameStart(s) {
		return notWellFormed("a local name starts with a character names may not start with")
	}
	return nil
}

// nameStart reports whether s (a valid part of a name) may begin a name.
// ASCII is decided here; anything else by encoding/xml itself, so the
// answer agrees with the parser that will read the output again.
func nameStart(s string) bool {
	switch c := s[0]; {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		return true
	case c < utf8.RuneSelf:
		return false
	}
	_, err := xml.NewDecoder(strings.NewReader("<" + s + "/>")).RawToken()
	return err == nil
}

// unique refuses two attributes with the same expanded name (XML 1.0
// §3.1, Namespaces in XML 1.0 §6.3). Many attributes go through a map so
// that a stanza of thousands of them costs linear time.
func unique(attrs []xml.Attr) error {
	dup := notWellFormed("attribute given twice")
	if len(attrs) <= 16 {
		for i := range attrs {
			for j := i + 1; j < len(attrs); j++ {
				if attrs[i].Name == attrs[j].Name {
					return dup
				}
			}
		}
		return nil
	}
	seen := make(map[xml.Name]bool, len(attrs))
	for _, a := range attrs {
		if seen[a.Name] {
			return dup
		}
		seen[a.Name] = true
	}
	return nil
}

// clip shortens a client's string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
