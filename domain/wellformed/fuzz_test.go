package wellformed

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzCanonical: whatever the input, Canonical either refuses it with an
// *Error or returns XML that a second, independent parse (encoding/xml's
// namespace-translating Token) reads as the same names, attributes and
// text that Decoder read from the input, and that is its own canonical
// form. Seeds: testdata/stanzas.
func FuzzCanonical(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/stanzas/*.xml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Canonical(in)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		want := events(t, NewDecoder(strings.NewReader(in), 0))
		std := xml.NewDecoder(strings.NewReader(out))
		got := events(t, std)
		if !slices.Equal(got, want) {
			t.Fatalf("meaning changed\nin:   %q\nout:  %q\nwant: %q\ngot:  %q", in, out, want, got)
		}
		if again, err := Canonical(out); err != nil || again != out {
			t.Fatalf("not stable: %q -> %q, %v", out, again, err)
		}
	})
}

type tokenReader interface{ Token() (xml.Token, error) }

// events lists what a parse saw, declarations left out, adjacent text
// joined and white space outside the root dropped.
func events(t *testing.T, d tokenReader) []string {
	var out []string
	var text bytes.Buffer
	depth := 0
	flush := func() {
		if text.Len() > 0 {
			out = append(out, "text "+text.String())
			text.Reset()
		}
	}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			flush()
			return out
		}
		if err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			flush()
			depth++
			var attrs []string
			for _, a := range x.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				attrs = append(attrs, a.Name.Space+"|"+a.Name.Local+"="+a.Value)
			}
			slices.Sort(attrs)
			out = append(out, "start "+x.Name.Space+"|"+x.Name.Local+" "+strings.Join(attrs, " "))
		case xml.EndElement:
			flush()
			depth--
			out = append(out, "end "+x.Name.Space+"|"+x.Name.Local)
		case xml.CharData:
			if depth > 0 {
				text.Write(x)
			}
		}
	}
}
