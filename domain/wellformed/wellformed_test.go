package wellformed

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	const c = "jabber:client"
	tests := []struct {
		name, in, want, cond string
	}{
		{"plain message", `<message xmlns='jabber:client' to='a@b' id='1'><body>hi &amp; bye</body></message>`,
			`<message xmlns='jabber:client' to='a@b' id='1'><body>hi &amp; bye</body></message>`, ""},
		{"prefixed child becomes default-declared", `<message xmlns='jabber:client' xmlns:r='urn:xmpp:receipts'><r:request/></message>`,
			`<message xmlns='jabber:client'><request xmlns='urn:xmpp:receipts'/></message>`, ""},
		{"child back in the parent namespace", `<message xmlns='jabber:client'><x xmlns='urn:a'><body xmlns='jabber:client'/></x></message>`,
			`<message xmlns='jabber:client'><x xmlns='urn:a'><body xmlns='jabber:client'/></x></message>`, ""},
		{"namespaced attributes get local prefixes", `<m xmlns='u' xmlns:p='urn:p' xmlns:q='urn:q'><c p:a='1' q:b='2' p:c='3' d='4'/></m>`,
			`<m xmlns='u'><c xmlns:ns0='urn:p' ns0:a='1' xmlns:ns1='urn:q' ns1:b='2' ns0:c='3' d='4'/></m>`, ""},
		{"xml:lang kept", `<m xmlns='u' xml:lang='en'><b xml:lang='de'>x</b></m>`, `<m xmlns='u' xml:lang='en'><b xml:lang='de'>x</b></m>`, ""},
		{"escapes", "<m xmlns='u' a='&quot;x&apos;&#9;&#10;'>&lt;&gt;&#13;\"'</m>", "<m xmlns='u' a='&quot;x&apos;&#x9;&#xA;'>&lt;&gt;&#xD;\"'</m>", ""},
		{"CDATA becomes text", `<m xmlns='u'><![CDATA[<b>&]]></m>`, `<m xmlns='u'>&lt;b&gt;&amp;</m>`, ""},
		{"no namespace child", `<m xmlns='u'><x xmlns=''/></m>`, `<m xmlns='u'><x xmlns=''/></m>`, ""},
		{"declared on a child, used below", `<m xmlns='u'><a xmlns:p='urn:p'><p:b/></a></m>`, `<m xmlns='u'><a><b xmlns='urn:p'/></a></m>`, ""},

		{"undeclared element prefix", `<m xmlns='u'><foo:bar/></m>`, "", NotWellFormed},
		{"undeclared attribute prefix", `<m xmlns='u'><b foo:x='1'/></m>`, "", NotWellFormed},
		{"prefix out of scope", `<m xmlns='u'><a xmlns:p='urn:p'/><p:b/></m>`, "", NotWellFormed},
		{"duplicate attribute", `<m xmlns='u'><b x='1' x='2'/></m>`, "", NotWellFormed},
		{"duplicate expanded attribute", `<m xmlns='u' xmlns:p='urn:a' xmlns:q='urn:a'><b p:x='1' q:x='2'/></m>`, "", NotWellFormed},
		{"duplicate declaration", `<m xmlns='u'><b xmlns:p='urn:a' xmlns:p='urn:b'/></m>`, "", NotWellFormed},
		{"prefix bound to empty", `<m xmlns='u'><b xmlns:p=''/></m>`, "", NotWellFormed},
		{"xmlns prefix declared", `<m xmlns='u'><b xmlns:xmlns='urn:x'/></m>`, "", NotWellFormed},
		{"xml prefix rebound", `<m xmlns='u'><b xmlns:xml='urn:x'/></m>`, "", NotWellFormed},
		{"xml namespace bound elsewhere", `<m xmlns='u'><b xmlns:p='http://www.w3.org/XML/1998/namespace'/></m>`, "", NotWellFormed},
		{"element with xmlns prefix", `<m xmlns='u'><xmlns:b/></m>`, "", NotWellFormed},
		{"colon-led name", `<m xmlns='u'><:b/></m>`, "", NotWellFormed},
		{"colon-ended name", `<m xmlns='u'><b: /></m>`, "", NotWellFormed},
		{"local part starting with a digit", `<m xmlns='u' xmlns:r='urn:r'><r:0a/></m>`, "", NotWellFormed},
		{"attribute local part starting with a dot", `<m xmlns='u' xmlns:r='urn:r'><a r:.x='1'/></m>`, "", NotWellFormed},
		{"non-ASCII local part", `<m xmlns='u' xmlns:r='urn:r'><r:é/></m>`, `<m xmlns='u'><é xmlns='urn:r'/></m>`, ""},
		{"two colons", `<m xmlns='u' xmlns:a='urn:a'><a:b:c/></m>`, "", NotWellFormed},
		{"mismatched end", `<m xmlns='u'><a></b></m>`, "", NotWellFormed},
		{"end with another prefix", `<m xmlns='u' xmlns:p='urn:a' xmlns:q='urn:a'><p:a></q:a></m>`, "", NotWellFormed},
		{"comment", `<m xmlns='u'><!-- hi --></m>`, "", RestrictedXML},
		{"processing instruction", `<m xmlns='u'><?pi x?></m>`, "", RestrictedXML},
		{"doctype", `<m xmlns='u'><!DOCTYPE x></m>`, "", RestrictedXML},
		{"unknown entity", `<m xmlns='u'>&foo;</m>`, "", NotWellFormed},
		{"invalid character", "<m xmlns='u'>\x01</m>", "", NotWellFormed},
		{"invalid UTF-8", "<m xmlns='u'>\xff</m>", "", NotWellFormed},
		{"unclosed", `<m xmlns='u'><a>`, "", NotWellFormed},
		{"two roots", `<m xmlns='u'/><m xmlns='u'/>`, "", NotWellFormed},
		{"too deep", "<m xmlns='u'>" + strings.Repeat("<a>", DefaultMaxDepth) + strings.Repeat("</a>", DefaultMaxDepth) + "</m>", "", PolicyViolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical(tt.in)
			if tt.cond != "" {
				var we *Error
				if !errors.As(err, &we) || we.Cond != tt.cond {
					t.Fatalf("Canonical(%q) = %q, %v; want a %s error", tt.in, got, err, tt.cond)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Canonical(%q)\n got %q, %v\nwant %q", tt.in, got, err, tt.want)
			}
			if again, err := Canonical(got); err != nil || again != got {
				t.Fatalf("not stable: %q -> %q, %v", got, again, err)
			}
		})
	}
}

// TestStream reads stanzas from a stream as c2s does: a declaration on
// the stream header is in scope for the stanzas.
func TestStream(t *testing.T) {
	in := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' to='a'>` +
		`<message><x:y/></message> <presence/></stream:stream>`
	d := NewDecoder(strings.NewReader(in), 0)
	var got []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(xml.StartElement); ok && d.Depth() == 2 {
			var b bytes.Buffer
			if err := d.WriteInner(&b, s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s.Name.Space+" "+s.Name.Local+" "+b.String())
		}
	}
	want := []string{"jabber:client message <y xmlns='urn:x'/>", "jabber:client presence "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestAttributesLinear: thousands of attributes are checked in linear
// time (a quadratic check would take minutes on this input).
func TestAttributesLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("<m xmlns='u'><a")
	for i := range 50000 {
		fmt.Fprintf(&b, " a%d=''", i)
	}
	b.WriteString(" a7=''/></m>")
	if _, err := Canonical(b.String()); err == nil {
		t.Fatal("a duplicate among many attributes was accepted")
	}
}

func TestSalvage(t *testing.T) {
	for in, want := range map[string]string{
		`<message xmlns='jabber:client' id='1'><body>ok</body></message>`:   `<message xmlns='jabber:client' id='1'><body>ok</body></message>`,
		`<message xmlns='jabber:client' id='1'><foo:bar/><body/></message>`: `<message xmlns='jabber:client' id='1'></message>`,
		`<message xmlns='jabber:client' id='1'><!-- x --></message>`:        `<message xmlns='jabber:client' id='1'></message>`,
		`<message xmlns='jabber:client' id='1' id='2'><body/></message>`:    ``,
		`not xml`: ``,
	} {
		if got := Salvage(in); got != want {
			t.Errorf("Salvage(%q) = %q, want %q", in, got, want)
		}
	}
}
