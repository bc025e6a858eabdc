package c2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"annals.im/annals/domain/archive"
)

// FuzzRestamp: whatever stanza a client sends, the copy the server
// forwards is well-formed XML with the sender's JID as from and the same
// name. Seeds: testdata/stanzas.
func FuzzRestamp(f *testing.F) {
	stanzaSeeds(f)
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

// stanzaSeeds adds every stanza in testdata/stanzas to the corpus.
func stanzaSeeds(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/stanzas/*.xml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzScanMessage: whatever a client sends, the payload the server keeps
// and forwards is the client's minus exactly its top-level stanza-ids:
// well-formed, and no stanza-id of the client's survives.
func FuzzScanMessage(f *testing.F) {
	stanzaSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var e element
		if err := xml.Unmarshal(in, &e); err != nil {
			return
		}
		m := scanMessage(&e)
		stripped := e
		stripped.Inner = m.inner
		out := insertChild(restamp(&stripped, "romeo@localhost/orchard"), stanzaIDXML("juliet@localhost", "s1"))
		var back element
		if err := xml.Unmarshal([]byte(out), &back); err != nil {
			t.Fatalf("not well-formed: %v\nin:  %s\nout: %s", err, in, out)
		}
		ids := 0
		for _, c := range children(back) {
			if c.XMLName == (xml.Name{Space: nsStanzaID, Local: "stanza-id"}) {
				ids++
				if c.attr("id") != "s1" {
					t.Fatalf("a client's stanza-id survived: %s\nin: %s", out, in)
				}
			}
		}
		if ids != 1 {
			t.Fatalf("%d stanza-ids in %s", ids, out)
		}
		if len(m.inner) > len(e.Inner) {
			t.Fatalf("payload grew: %q -> %q", e.Inner, m.inner)
		}
	})
}

// FuzzMAMQuery: any query element parses to a query or a stanza error,
// never a panic, and a parsed query asks for at most MaxPage results.
func FuzzMAMQuery(f *testing.F) {
	stanzaSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var e element
		if err := xml.Unmarshal(in, &e); err != nil {
			return
		}
		q, ok := e.child()
		if !ok {
			q = e
		}
		query, err := parseMAMQuery(q)
		var qe *queryError
		if err != nil && !errors.As(err, &qe) {
			t.Fatalf("error that is not a stanza error: %v", err)
		}
		if err == nil && (query.Limit() < 1 || query.Limit() > archive.MaxPage) {
			t.Fatalf("limit %d", query.Limit())
		}
	})
}
