package mam

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/archive"
)

// fakeArchive answers from a fixed list and records what it was asked.
type fakeArchive struct {
	entries []archive.Entry
	asked   archive.Query
	prefs   archive.Prefs
	fail    error
}

func (f *fakeArchive) Query(_ context.Context, acct string, q archive.Query) (archive.Page, error) {
	f.asked = q
	if f.fail != nil {
		return archive.Page{}, f.fail
	}
	if q.AfterID == "nope" {
		return archive.Page{}, fmt.Errorf("%w: nope", archive.ErrItemNotFound)
	}
	return archive.Page{Entries: f.entries, Complete: true}, nil
}

func (f *fakeArchive) Bounds(context.Context, string) (first, last archive.Entry, ok bool, err error) {
	if len(f.entries) == 0 {
		return first, last, false, nil
	}
	return f.entries[0], f.entries[len(f.entries)-1], true, nil
}

func (f *fakeArchive) Prefs(context.Context, string) (archive.Prefs, error) { return f.prefs, nil }
func (f *fakeArchive) SetPrefs(_ context.Context, _ string, p archive.Prefs) error {
	f.prefs = p
	return nil
}

const queryForm = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>%s</x>"

// Requests on the own archive and on a room's are answered from the
// archive, page and answer in order, errors as stanza errors with the
// internals kept for the log.
func TestServe(t *testing.T) {
	at := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	a := &fakeArchive{entries: []archive.Entry{
		{ID: "A1", At: at, Stanza: "<message xmlns='jabber:client' from='b@x/r'><body>one</body></message>"},
		{ID: "A2", At: at.Add(time.Second), Stanza: "<message xmlns='jabber:client' from='b@x/r'><body>two</body></message>"},
	}}
	s := New(a, 1<<20, nil)
	m := mux.New()
	s.Register(m)
	sess := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	for _, tc := range []struct {
		name, iq string
		want     []string
		check    func(t *testing.T)
	}{
		{"form", "<iq type='get' id='f'><query xmlns='urn:xmpp:mam:2'/></iq>",
			[]string{"type='result'", "var='with'", "var='ids'"}, nil},
		{"query", "<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='x'>" + fmt.Sprintf(queryForm, "<field var='with'><value>b@x</value></field>") +
			"<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></query></iq>",
			[]string{"queryid='x' id='A1'", "<body>one</body>", "stamp='2026-11-30T05:00:01.000000Z'", "<fin xmlns='urn:xmpp:mam:2' complete='true'>", "<first>A1</first><last>A2</last>"},
			func(t *testing.T) {
				if a.asked.With != "b@x" || a.asked.Max != 10 || a.asked.MaxBytes != 1<<20 {
					t.Errorf("asked %+v", a.asked)
				}
			}},
		{"unknown field", "<iq type='set' id='u'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='colour'><value>red</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "unsupported field"}, nil},
		{"extended fields", "<iq type='set' id='x'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm,
			"<field var='ids' type='list-multi'><value> A1 </value><value>A2</value><value/></field><field var='include-groupchat' type='boolean'><value>1</value></field>"+
				"<field var='start'><value>2026-11-30T05:00:00Z</value></field><field type='fixed'><value>Only these</value></field>") + "</query></iq>",
			[]string{"<fin "}, func(t *testing.T) {
				if strings.Join(a.asked.IDs, ",") != "A1,A2" || !a.asked.Groupchat || !a.asked.Start.Equal(at) {
					t.Errorf("asked %+v", a.asked)
				}
			}},
		{"no FORM_TYPE", "<iq type='set' id='nf'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='with'><value>b@x</value></field></x></query></iq>",
			[]string{"type='error'", "bad-request", "FORM_TYPE must be urn:xmpp:mam:2"}, nil},
		{"form of another type", "<iq type='set' id='ft'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='result'/></query></iq>",
			[]string{"type='error'", "bad-request", "not submit"}, nil},
		{"bad JID", "<iq type='set' id='bj'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='with'><value>@x</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "is not a JID"}, nil},
		{"bad boolean", "<iq type='set' id='bb'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='include-groupchat'><value>yes</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "include-groupchat: &#34;yes&#34; is not a boolean"}, nil},
		{"duplicate FORM_TYPE", "<iq type='set' id='d'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='FORM_TYPE'><value>urn:example</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "FORM_TYPE"}, nil},
		{"field without var", "<iq type='set' id='v'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field><value>b@x</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "without a var"}, nil},
		{"too many ids", "<iq type='set' id='many'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='ids'>"+strings.Repeat("<value>A1</value>", 300)+"</field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "more than 256 values"}, nil},
		{"no such id", "<iq type='set' id='n'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, "<field var='after-id'><value>nope</value></field>") + "</query></iq>",
			[]string{"item-not-found"}, nil},
		{"metadata", "<iq type='get' id='m'><metadata xmlns='urn:xmpp:mam:2'/></iq>",
			[]string{"<start id='A1' timestamp='2026-11-30T05:00:00.000000Z'/><end id='A2'"}, nil},
		{"prefs", "<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>b@x</jid></always><never/></prefs></iq>",
			[]string{"default='roster'", "<always><jid>b@x</jid></always>"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, mux.Account, sess, "", tc.iq)
			if tc.name == "query" || tc.name == "extended fields" { // a page: the results and the answer, one write
				got, sess.Sent = strings.Join(sess.Sent, ""), nil
				handled, err = true, nil
			}
			if !handled || err != nil {
				t.Fatalf("handled %v, %v", handled, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}

	// A room's archive: groupchat only, answered from the room, no prefs.
	e, _ := muxtest.Parse("<iq type='set' id='r' to='hall@conference.localhost'><query xmlns='urn:xmpp:mam:2'/></iq>")
	q, _ := e.Child()
	sess.Sent = nil
	if err := s.ServeRoom(context.Background(), sess, e, q, "hall@conference.localhost"); err != nil || !a.asked.Groupchat ||
		!strings.Contains(strings.Join(sess.Sent, ""), "from='hall@conference.localhost'") {
		t.Errorf("room query: %v, asked %+v, sent %q", err, a.asked, sess.Sent)
	}
	e, _ = muxtest.Parse("<iq type='get' id='rp' to='hall@conference.localhost'><prefs xmlns='urn:xmpp:mam:2'/></iq>")
	q, _ = e.Child()
	sess.Sent = nil
	s.ServeRoom(context.Background(), sess, e, q, "hall@conference.localhost")
	if len(sess.Sent) != 1 || !strings.Contains(sess.Sent[0], "feature-not-implemented") {
		t.Errorf("room prefs: %q", sess.Sent)
	}

	// The store failing: internal-server-error, the cause for the log only.
	a.fail = errors.New("disk /var/lib/x on fire")
	got, _, err := muxtest.Ask(m, mux.Account, sess, "", "<iq type='set' id='e'><query xmlns='urn:xmpp:mam:2'/></iq>")
	if err == nil || !strings.Contains(got, "internal-server-error") || strings.Contains(got, "fire") {
		t.Errorf("store failure: %q, %v", got, err)
	}
}

// Every field the query form offers is one a query may submit: the form
// read back through the parser, each field returned empty, is accepted.
func TestFormOffersWhatIsRead(t *testing.T) {
	q, err := muxtest.Parse(mamForm)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := q.Child()
	offered, err := form.Parse(x)
	if err != nil || offered.Type != form.TypeForm || offered.FormType != nsMAM || len(offered.Fields) != 7 {
		t.Fatalf("offered form: %+v, %v", offered, err)
	}
	var b strings.Builder
	for _, f := range offered.Fields {
		b.WriteString("<field var='" + f.Var + "' type='" + f.Type + "'><value/></field>")
	}
	sub, _ := muxtest.Parse("<query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(queryForm, b.String()) + "</query>")
	if _, err := parseMAMQuery(*sub); err != nil {
		t.Fatalf("submitting the offered fields: %v", err)
	}
}

// An end given to the second covers that whole second (poezio asks up
// to the stamp of a message it has, kept to the second); one with a
// fraction is the instant it names; a start is always the instant.
func TestEndToTheSecond(t *testing.T) {
	for _, c := range []struct {
		field, value string
		start, end   time.Time
	}{
		{"end", "2026-11-30T00:43:48Z", time.Time{}, time.Date(2026, 11, 30, 0, 43, 48, 999999999, time.UTC)},
		{"end", "2026-11-30T00:43:48.250Z", time.Time{}, time.Date(2026, 11, 30, 0, 43, 48, 250000000, time.UTC)},
		{"end", "2026-11-30T01:43:48+01:00", time.Time{}, time.Date(2026, 11, 30, 0, 43, 48, 999999999, time.UTC)},
		{"start", "2026-11-30T00:43:48Z", time.Date(2026, 11, 30, 0, 43, 48, 0, time.UTC), time.Time{}},
	} {
		q, err := muxtest.Parse(fmt.Sprintf("<query xmlns='urn:xmpp:mam:2'>"+queryForm+"</query>",
			"<field var='"+c.field+"'><value>"+c.value+"</value></field>"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseMAMQuery(*q)
		if err != nil {
			t.Fatalf("%s %s: %v", c.field, c.value, err)
		}
		if !got.Start.Equal(c.start) || !got.End.Equal(c.end) {
			t.Errorf("%s %s: start %v end %v; want %v %v", c.field, c.value, got.Start, got.End, c.start, c.end)
		}
	}
}
