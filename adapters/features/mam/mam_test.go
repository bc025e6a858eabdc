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

const form = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>%s</x>"

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
		{"query", "<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2' queryid='x'>" + fmt.Sprintf(form, "<field var='with'><value>b@x</value></field>") +
			"<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></query></iq>",
			[]string{"queryid='x' id='A1'", "<body>one</body>", "stamp='2026-11-30T05:00:01.000000Z'", "<fin xmlns='urn:xmpp:mam:2' complete='true'>", "<first>A1</first><last>A2</last>"},
			func(t *testing.T) {
				if a.asked.With != "b@x" || a.asked.Max != 10 || a.asked.MaxBytes != 1<<20 {
					t.Errorf("asked %+v", a.asked)
				}
			}},
		{"unknown field", "<iq type='set' id='u'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(form, "<field var='colour'><value>red</value></field>") + "</query></iq>",
			[]string{"type='error'", "bad-request", "unsupported field"}, nil},
		{"no such id", "<iq type='set' id='n'><query xmlns='urn:xmpp:mam:2'>" + fmt.Sprintf(form, "<field var='after-id'><value>nope</value></field>") + "</query></iq>",
			[]string{"item-not-found"}, nil},
		{"metadata", "<iq type='get' id='m'><metadata xmlns='urn:xmpp:mam:2'/></iq>",
			[]string{"<start id='A1' timestamp='2026-11-30T05:00:00.000000Z'/><end id='A2'"}, nil},
		{"prefs", "<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>b@x</jid></always><never/></prefs></iq>",
			[]string{"default='roster'", "<always><jid>b@x</jid></always>"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, mux.Account, sess, "", tc.iq)
			if tc.name == "query" { // a page: the results and the answer, one write
				got = strings.Join(sess.Sent, "")
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
