package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"annals.im/annals/domain/wellformed"
)

// OwnAttrs returns a stanza's attributes without its namespace
// declarations: its Inner is re-serialized to declare what it uses, so
// the declarations mean nothing any more.
func OwnAttrs(attrs []xml.Attr) []xml.Attr {
	out := attrs[:0:0]
	for _, a := range attrs {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Parse reads one element from b as a stream's stanza is read, with the
// stream's default namespace jabber:client and the same strict reader:
// for stored stanzas and tests.
func Parse(b []byte, maxDepth int) (*Element, error) {
	d := wellformed.NewDecoder(io.MultiReader(strings.NewReader("<s xmlns='"+NSClient+"'>"), bytes.NewReader(b), strings.NewReader("</s>")), maxDepth+1)
	var e *Element
	closed := false // the wrapper ended: nothing may follow
	for {
		tok, err := d.Token()
		if err == nil && closed {
			err = errors.New("stanza: input after the element")
		}
		if err != nil {
			if err == io.EOF && e != nil {
				return e, nil
			}
			if err == io.EOF {
				err = errors.New("stanza: no element")
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if d.Depth() == 1 {
				continue
			}
			if e != nil {
				return nil, errors.New("stanza: more than one element")
			}
			var inner bytes.Buffer
			if err := d.WriteInner(&inner, t); err != nil {
				return nil, err
			}
			e = &Element{XMLName: t.Name, Attrs: OwnAttrs(t.Attr), Inner: inner.Bytes()}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("stanza: text beside the element")
			}
		case xml.EndElement:
			closed = d.Depth() == 0
		default:
			return nil, &wellformed.Error{Cond: wellformed.RestrictedXML, Msg: "only one element is allowed"}
		}
	}
}
