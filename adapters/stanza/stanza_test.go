package stanza_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"testing"

	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/pep"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/roster"
)

// An element's attributes, children (inheriting the default namespace)
// and text read as the stream said them.
func TestElement(t *testing.T) {
	e, err := muxtest.Parse(`<message to='a@b' xml:lang='en' id='&amp;1'><body>hi &lt;3<b/>!</body><x xmlns='urn:x'><y/></x></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if e.Attr("id") != "&1" || e.Attr("lang") != "en" || e.Attr("from") != "" {
		t.Errorf("attributes: id %q lang %q", e.Attr("id"), e.Attr("lang"))
	}
	kids := e.Children()
	if len(kids) != 2 || kids[0].XMLName.Space != stanza.NSClient || kids[1].XMLName.Space != "urn:x" {
		t.Fatalf("children: %+v", kids)
	}
	if got := kids[0].Text(); got != "hi <3!" {
		t.Errorf("text %q", got)
	}
	x, ok := e.Named("urn:x", "x")
	if y, _ := x.Child(); !ok || y.XMLName.Space != "urn:x" || y.XMLName.Local != "y" {
		t.Errorf("named child: %+v %v", x, ok)
	}
}

// Each condition goes out with its usual type; text is escaped; an error
// that is not a stanza error says nothing of itself to the client.
func TestErrors(t *testing.T) {
	for cond, typ := range map[string]string{"item-not-found": "cancel", "forbidden": "auth", "bad-request": "modify", "resource-constraint": "wait"} {
		if got := stanza.Errorf(cond, "").XML(); !strings.HasPrefix(got, "<error type='"+typ+"'><"+cond+" ") {
			t.Errorf("%s: %s", cond, got)
		}
	}
	if got := stanza.Errorf("not-allowed", "a <b>").XML(); !strings.Contains(got, ">a &lt;b&gt;</text>") {
		t.Errorf("text: %s", got)
	}
	wrapped := fmt.Errorf("deciding: %w", stanza.Errorf("conflict", "taken"))
	if se := stanza.ErrorOf(wrapped); se.Cond != "conflict" {
		t.Errorf("wrapped: %+v", se)
	}
	if se := stanza.ErrorOf(errors.New("secret path /var/x")); se.Cond != "internal-server-error" || se.Text != "" {
		t.Errorf("internal: %+v", se)
	}
}

// The splicing helpers keep a serialized stanza well-formed: to replaced
// or added, self-closing or not, children added before the end tag.
func TestSplicing(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{stanza.WithTo("<presence from='a@b'/>", "c@d/e"), "<presence from='a@b' to='c@d/e'/>"},
		{stanza.WithTo("<message to='x@y' id='1'><body/></message>", "c&d"), "<message id='1' to='c&amp;d'><body/></message>"},
		{stanza.WithoutTo("<message to='x@y' id='1'/>"), "<message id='1'/>"},
		{stanza.WithoutTo("<message id='1'/>"), "<message id='1'/>"},
		{stanza.WithID("<presence from='a'/>", "p<1"), "<presence id='p&lt;1' from='a'/>"},
		{stanza.InsertChild("<message><body>x</body></message>", "<y/>"), "<message><body>x</body><y/></message>"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

// Each domain rule error is answered with its condition and its text
// without the package prefix; a stanza error is itself; anything else is
// internal-server-error and says nothing.
func TestErrorFor(t *testing.T) {
	for _, tc := range []struct {
		err        error
		typ, cond  string
		text       string
		ruleOrSelf bool
	}{
		{fmt.Errorf("%w: no nick", room.ErrBadNick), "modify", "jid-malformed", "not a valid nick: no nick", true},
		{room.ErrMembersOnly, "auth", "registration-required", "members only", true},
		{fmt.Errorf("deciding: %w", pep.ErrItemNotFound), "cancel", "item-not-found", "deciding: pep: no such item", true},
		{archive.ErrItemNotFound, "cancel", "item-not-found", "no such archive ID", true},
		{roster.ErrFull, "cancel", "resource-constraint", "the roster is full", true},
		{stanza.Errorf("gone", "moved"), "", "gone", "moved", true},
		{errors.New("disk on fire"), "wait", "internal-server-error", "", false},
	} {
		se, ok := stanza.ErrorFor(tc.err)
		if se.Type != tc.typ || se.Cond != tc.cond || se.Text != tc.text || ok != tc.ruleOrSelf {
			t.Errorf("%v: %+v %v", tc.err, se, ok)
		}
	}
}

// A message from another server keeps the stanza-ids and occupant-ids of
// others (a remote room's); one claiming to be by us is dropped.
func TestScanRemoteMessage(t *testing.T) {
	e, err := stanza.Parse([]byte(`<message xmlns='jabber:server' type='groupchat'><body>hi</body>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='hall@rooms.elsewhere' id='r1'/>`+
		`<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.test' id='forged'/>`+
		`<occupant-id xmlns='urn:xmpp:occupant-id:0' id='o1'/></message>`), 16)
	if err != nil {
		t.Fatal(err)
	}
	ours := func(by string) bool { return strings.HasSuffix(by, "@capulet.test") || by == "capulet.test" }
	m := stanza.ScanRemoteMessage(e, ours)
	got := string(m.Inner)
	if !m.Body || !strings.Contains(got, "id='r1'") || strings.Contains(got, "forged") || !strings.Contains(got, "id='o1'") {
		t.Fatalf("kept %s (body %v); want the room's stanza-id and occupant-id, not the forged one", got, m.Body)
	}
	if all := string(stanza.ScanMessage(e).Inner); strings.Contains(all, "stanza-id") || strings.Contains(all, "occupant-id") {
		t.Fatalf("a client's message kept %s", all)
	}
}

// WithoutChildren drops the top-level children of one name, prefixed or
// not, and keeps the rest byte for byte.
func TestWithoutChildren(t *testing.T) {
	e, err := stanza.Parse([]byte(`<message xmlns='jabber:client' xmlns:d='urn:xmpp:dmuc:0'><body>hi</body><d:dmuc seq='1'/>`+
		`<x xmlns='urn:x'><dmuc xmlns='urn:xmpp:dmuc:0' seq='inner'/></x><dmuc xmlns='urn:xmpp:dmuc:0' seq='2'/></message>`), 16)
	if err != nil {
		t.Fatal(err)
	}
	got := string(stanza.WithoutChildren(e, xml.Name{Space: "urn:xmpp:dmuc:0", Local: "dmuc"}))
	if strings.Contains(got, "seq='1'") || strings.Contains(got, "seq='2'") || !strings.Contains(got, "seq='inner'") || !strings.HasPrefix(got, "<body>hi</body>") {
		t.Fatalf("kept %s", got)
	}
}
