package form

import (
	"bytes"
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"annals.im/annals/adapters/stanza"
)

// NS is the data forms namespace.
const NS = "jabber:x:data"

// Form types (XEP-0004 §3.1).
const (
	TypeForm   = "form"
	TypeSubmit = "submit"
	TypeCancel = "cancel"
	TypeResult = "result"
)

// Field types (XEP-0004 §3.3).
const (
	Boolean     = "boolean"
	Fixed       = "fixed"
	Hidden      = "hidden"
	JIDMulti    = "jid-multi"
	JIDSingle   = "jid-single"
	ListMulti   = "list-multi"
	ListSingle  = "list-single"
	TextMulti   = "text-multi"
	TextPrivate = "text-private"
	TextSingle  = "text-single"
)

// multi says which field types may hold more than one value (XEP-0004
// §3.2: "all other field types MUST NOT contain more than one <value/>").
// A field without a type may: in a submitted form its type is the one the
// form it answers gave it, which the parser does not know.
var multi = map[string]bool{"": true, ListMulti: true, JIDMulti: true, TextMulti: true, Hidden: true,
	Boolean: false, Fixed: false, JIDSingle: false, ListSingle: false, TextPrivate: false, TextSingle: false}

// The bounds of a form. The largest form a client has reason to send here
// is a room's configuration (14 fields, one value each), and a MAM query
// asks for at most archive.MaxPage (250) messages by ID: a form beyond
// these is refused rather than read. They are constants rather than
// settings: a form is inside one stanza, already bounded in bytes (the
// session's MaxStanza), and these only keep its parse from growing with
// it.
const (
	MaxFields = 64  // <field/> elements, fixed ones included
	MaxValues = 256 // <value/> elements in all the fields together
)

// FormType is the var of the field naming the form's meaning (XEP-0068).
const FormType = "FORM_TYPE"

// Field is a submitted field.
type Field struct {
	Var    string
	Type   string   // as given; "" when the field has no type attribute
	Values []string // the character data of each <value/>, as sent
}

// Value returns the field's first value without surrounding white space,
// or "" when it has none.
func (f Field) Value() string {
	if len(f.Values) == 0 {
		return ""
	}
	return strings.TrimSpace(f.Values[0])
}

// Bool reads a boolean field (XEP-0004 §3.3: "0" or "false", "1" or
// "true"); no value or an empty one is false.
func (f Field) Bool() (bool, error) {
	switch v := f.Value(); v {
	case "1", "true":
		return true, nil
	case "0", "false", "":
		return false, nil
	default:
		return false, invalid("%s: %q is not a boolean", f.Var, v)
	}
}

// Form is a parsed data form.
type Form struct {
	Type     string // TypeSubmit, …; "" when the form has no type attribute
	FormType string // the FORM_TYPE field's value; "" when there is none
	// Fields are the fields that carry data, in the order sent, each var
	// once. FORM_TYPE is in FormType, not here; fixed fields are left out
	// (XEP-0004 §3.3: they describe, they gather nothing).
	Fields []Field
}

// Field returns the field called name.
func (f *Form) Field(name string) (Field, bool) {
	for _, fl := range f.Fields {
		if fl.Var == name {
			return fl, true
		}
	}
	return Field{}, false
}

// Error is a form that breaks XEP-0004 or XEP-0068, or passes a bound:
// the features answer it with bad-request, the text saying what is wrong.
type Error struct {
	Msg string
}

func (e *Error) Error() string { return "data form: " + e.Msg }

func invalid(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

// Parse reads the data form x, an element {jabber:x:data}x as the stream
// reader kept it. Elements of other namespaces, and those a submitted
// form has no use for (title, instructions, a field's desc, required and
// options), are skipped; a value holding anything but text is refused.
func Parse(x stanza.Element) (*Form, error) {
	if x.XMLName.Space != NS || x.XMLName.Local != "x" {
		return nil, invalid("{%s}%s is not a form", x.XMLName.Space, x.XMLName.Local)
	}
	f := &Form{Type: x.Attr("type")}
	switch f.Type {
	case "", TypeForm, TypeSubmit, TypeCancel, TypeResult:
	default:
		return nil, invalid("form type %q", f.Type)
	}
	// Inner declares every namespace it uses but the default one, which
	// is x's: the wrapper restores it.
	d := xml.NewDecoder(io.MultiReader(strings.NewReader("<x xmlns='"+NS+"'>"), bytes.NewReader(x.Inner), strings.NewReader("</x>")))
	if _, err := d.Token(); err != nil {
		return nil, invalid("%v", err)
	}
	var (
		fields, values int
		seen           = map[string]bool{}
	)
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, invalid("%v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement: // the wrapper's: the form is read
			return f, nil
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NS, Local: "field"}) {
				if err := d.Skip(); err != nil {
					return nil, invalid("%v", err)
				}
				continue
			}
			if fields++; fields > MaxFields {
				return nil, invalid("more than %d fields", MaxFields)
			}
			fl, err := readField(d, t, &values)
			if err != nil {
				return nil, err
			}
			switch {
			case fl.Var == "" && fl.Type == Fixed:
				continue
			case fl.Var == "":
				// XEP-0004 §3.2: only a fixed field may go without a var.
				return nil, invalid("a %s field without a var", cmp.Or(fl.Type, TextSingle))
			case seen[fl.Var]:
				// XEP-0004 §3.2: the var "uniquely identifies the field".
				return nil, invalid("field %q appears more than once", fl.Var)
			}
			seen[fl.Var] = true
			switch {
			case fl.Var == FormType:
				// XEP-0068 §3: one value, the namespace the form is of.
				if len(fl.Values) != 1 || fl.Value() == "" {
					return nil, invalid("%s needs one value", FormType)
				}
				f.FormType = fl.Value()
			case fl.Type != Fixed:
				f.Fields = append(f.Fields, fl)
			}
		}
	}
}

// readField reads the field that start opens, counting its values in
// *values.
func readField(d *xml.Decoder, start xml.StartElement, values *int) (Field, error) {
	var fl Field
	for _, a := range start.Attr {
		switch {
		case a.Name.Space != "":
		case a.Name.Local == "var":
			fl.Var = a.Value
		case a.Name.Local == "type":
			fl.Type = a.Value
		}
	}
	many, known := multi[fl.Type]
	if !known {
		return fl, invalid("field %q has type %q", fl.Var, fl.Type)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return fl, invalid("%v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return fl, nil
		case xml.StartElement:
			if t.Name != (xml.Name{Space: NS, Local: "value"}) {
				if err := d.Skip(); err != nil {
					return fl, invalid("%v", err)
				}
				continue
			}
			if *values++; *values > MaxValues {
				return fl, invalid("more than %d values", MaxValues)
			}
			if len(fl.Values) == 1 && !many {
				return fl, invalid("field %q of type %s has more than one value", fl.Var, fl.Type)
			}
			v, err := readValue(d, fl.Var)
			if err != nil {
				return fl, err
			}
			fl.Values = append(fl.Values, v)
		}
	}
}

// readValue reads a <value/>'s text, up to its end tag.
func readValue(d *xml.Decoder, field string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return "", invalid("%v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.StartElement:
			return "", invalid("a value of %q holds an element, not only text", field)
		case xml.EndElement:
			return b.String(), nil
		}
	}
}
