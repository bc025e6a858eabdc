package stanza_test

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/wellformed"
)

// FuzzRestamp: whatever stanza a client sends, the copy the server
// forwards is namespace-well-formed XML, to a strict parser as well as to
// encoding/xml, with the sender's JID as from and the same name; what the
// stream reader refuses is refused with a stream error condition.
// Seeds: testdata/stanzas.
func FuzzRestamp(f *testing.F) {
	stanzaSeeds(f)
	f.Add([]byte("<message to='x'/>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		out := stanza.Restamp(e, "romeo@localhost/orchard")
		strictlyWellFormed(t, out)
		back, err := stanza.Parse([]byte(out), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("forwarded copy does not parse: %v\nin:  %s\nout: %s", err, in, out)
		}
		if back.XMLName.Local != e.XMLName.Local || back.Attr("from") != "romeo@localhost/orchard" {
			t.Fatalf("forwarded %s from %q; in %s", back.XMLName.Local, back.Attr("from"), in)
		}
	})
}

// strictlyWellFormed fails t unless s, inside a jabber:client stream as a
// client receives it, is namespace-well-formed to the strict reader and
// well-formed to encoding/xml.
func strictlyWellFormed(t *testing.T, s string) {
	t.Helper()
	if _, err := wellformed.Canonical(s); err != nil {
		t.Fatalf("not namespace-well-formed: %v\n%s", err, s)
	}
	d := xml.NewDecoder(strings.NewReader("<stream xmlns='jabber:client'>" + s + "</stream>"))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s)
		}
	}
}

// A child with a prefix declared on the stanza is forwarded declaring its
// namespace itself.
func TestRestampDeclaresNamespaces(t *testing.T) {
	e, err := stanza.Parse([]byte("<message xmlns:x='urn:example:x' to='a@localhost'><x:data>1</x:data></message>"), 8)
	if err != nil {
		t.Fatal(err)
	}
	out := stanza.Restamp(e, "r@localhost/o")
	want := "<message xmlns='jabber:client' to='a@localhost' from='r@localhost/o'><data xmlns='urn:example:x'>1</data></message>"
	if out != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
}

// Hostile payloads are refused by the reader with the RFC 6120 condition.
func TestParseRefusesHostileXML(t *testing.T) {
	for in, cond := range map[string]string{
		"<message to='b@x'><foo:bar/></message>":              "not-well-formed",
		"<message to='b@x'><body a='1' a='2'/></message>":     "not-well-formed",
		"<message to='b@x'><body><!-- x --></body></message>": "restricted-xml",
		"<message to='b@x'><?pi x?></message>":                "restricted-xml",
		"<message to='b@x'><!DOCTYPE x></message>":            "restricted-xml",
	} {
		_, err := stanza.Parse([]byte(in), 8)
		var we *wellformed.Error
		if !errors.As(err, &we) || we.Cond != cond {
			t.Errorf("%s: %v, want %s", in, err, cond)
		}
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
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		m := stanza.ScanMessage(e)
		stripped := *e
		stripped.Inner = m.Inner
		out := stanza.InsertChild(stanza.Restamp(&stripped, "romeo@localhost/orchard"), stanza.IDElement("juliet@localhost", "s1"))
		strictlyWellFormed(t, out)
		back, err := stanza.Parse([]byte(out), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("not well-formed: %v\nin:  %s\nout: %s", err, in, out)
		}
		ids := 0
		for _, c := range back.Children() {
			if c.XMLName == (xml.Name{Space: stanza.NSStanzaID, Local: "stanza-id"}) {
				ids++
				if c.Attr("id") != "s1" {
					t.Fatalf("a client's stanza-id survived: %s\nin: %s", out, in)
				}
			}
		}
		if ids != 1 {
			t.Fatalf("%d stanza-ids in %s", ids, out)
		}
		if len(m.Inner) > len(e.Inner) {
			t.Fatalf("payload grew: %q -> %q", e.Inner, m.Inner)
		}
	})
}

// FuzzScanRemoteMessage: whatever another server sends, the payload kept
// and forwarded is namespace-well-formed and keeps no stanza-id by one of
// ours (here, anything at capulet.test), while the others' survive.
func FuzzScanRemoteMessage(f *testing.F) {
	stanzaSeeds(f)
	f.Add([]byte("<message type='groupchat'><body>x</body><stanza-id xmlns='urn:xmpp:sid:0' by='hall@rooms.example' id='r'/><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.test' id='f'/></message>"))
	ours := func(by string) bool { return strings.HasSuffix(by, "capulet.test") }
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		m := stanza.ScanRemoteMessage(e, ours)
		stripped := *e
		stripped.Inner = m.Inner
		out := stanza.Restamp(&stripped, "romeo@montague.test/orchard")
		strictlyWellFormed(t, out)
		back, err := stanza.Parse([]byte(out), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatalf("not well-formed: %v\nin:  %s\nout: %s", err, in, out)
		}
		kept := 0
		for _, c := range back.Children() {
			if c.XMLName == (xml.Name{Space: stanza.NSStanzaID, Local: "stanza-id"}) {
				if ours(c.Attr("by")) {
					t.Fatalf("a stanza-id by one of ours survived: %s\nin: %s", out, in)
				}
				kept++
			}
		}
		want := 0
		for _, c := range e.Children() {
			if c.XMLName == (xml.Name{Space: stanza.NSStanzaID, Local: "stanza-id"}) && !ours(c.Attr("by")) {
				want++
			}
		}
		if kept != want {
			t.Fatalf("%d stanza-ids of others kept, want %d: %s\nin: %s", kept, want, out, in)
		}
	})
}
