package c2s

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRestamp: whatever stanza a client sends, the copy the server
// forwards is well-formed XML with the sender's JID as from and the same
// name. Seeds: testdata/stanzas.
func FuzzRestamp(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/stanzas/*.xml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("<message to='x'/>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var e element
		if err := xml.Unmarshal(in, &e); err != nil {
			return
		}
		out := restamp(&e, "romeo@localhost/orchard")
		// The copy is parsed inside a stream whose default namespace is
		// jabber:client, as a client receives it.
		var back element
		d := xml.NewDecoder(bytes.NewReader([]byte("<stream xmlns='jabber:client'>" + out + "</stream>")))
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("forwarded copy is not well-formed: %v\nin:  %s\nout: %s", err, in, out)
			}
			if st, ok := tok.(xml.StartElement); ok && st.Name.Local != "stream" {
				if err := d.DecodeElement(&back, &st); err != nil {
					t.Fatalf("forwarded copy is not well-formed: %v\nout: %s", err, out)
				}
				break
			}
		}
		if back.XMLName.Local != e.XMLName.Local || back.attr("from") != "romeo@localhost/orchard" {
			t.Fatalf("forwarded %s from %q; in %s", back.XMLName.Local, back.attr("from"), in)
		}
	})
}

// Children that use a prefix declared on the stanza keep their declaration.
func TestRestampKeepsPrefixes(t *testing.T) {
	var e element
	if err := xml.Unmarshal([]byte("<message xmlns:x='urn:example:x' to='a@localhost'><x:data>1</x:data></message>"), &e); err != nil {
		t.Fatal(err)
	}
	out := restamp(&e, "r@localhost/o")
	if !bytes.Contains([]byte(out), []byte("xmlns:x='urn:example:x'")) {
		t.Fatalf("prefix declaration lost: %s", out)
	}
}
