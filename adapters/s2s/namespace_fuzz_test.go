package s2s

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// FuzzServerNamespace: whatever a client sent, the copy a peer gets is the
// same stanza in the server namespace: it parses, with the same name,
// attributes and children, and nothing else of it changed namespace.
// Seeds: testdata/stanzas.
func FuzzServerNamespace(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/stanzas/*.xml")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		client := stanza.Restamp(e, "juliet@capulet.example/balcony")
		out := ServerNamespace(client)
		d := wellformed.NewDecoder(strings.NewReader("<stream xmlns='"+nsServer+"'>"+out+"</stream>"), wellformed.DefaultMaxDepth+1)
		var names []xml.Name
		for {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if s, ok := tok.(xml.StartElement); ok {
				names = append(names, s.Name)
			}
		}
		if len(names) < 2 || names[1] != (xml.Name{Space: nsServer, Local: e.XMLName.Local}) {
			t.Fatalf("the stanza is not %s in the server namespace: %v\n%s", e.XMLName.Local, names, out)
		}
		back, err := stanza.Parse([]byte(client), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("the client copy does not parse: %v", err)
		}
		var want []xml.Name
		for _, c := range back.Children() {
			want = append(want, c.XMLName)
		}
		srv := stanza.Element{XMLName: names[1], Inner: back.Inner}
		for i, c := range srv.Children() {
			w := want[i]
			if w.Space == stanza.NSClient {
				w.Space = nsServer // children in the stanza's namespace follow it
			}
			if c.XMLName != w {
				t.Fatalf("child %d is %v, was %v\n%s", i, c.XMLName, want[i], out)
			}
		}
	})
}
