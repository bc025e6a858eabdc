package vcard

import (
	"context"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/vcard"
)

const (
	png1    = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	pngSHA1 = "b2bbe763c7e1828c750d53f78550709a6fea19be"
)

// memVCards keeps the accounts' vCards by the domain's rules, in memory.
type memVCards struct{ states map[string]vcard.State }

func (m *memVCards) VCard(_ context.Context, acct string) (vcard.State, bool, error) {
	st, ok := m.states[acct]
	return st, ok, nil
}

func (m *memVCards) SetVCard(_ context.Context, acct string, cmd vcard.Set) (vcard.State, vcard.State, error) {
	before := m.states[acct]
	evs, err := vcard.Decide(before, cmd, event.NewIDs(), time.Now(), "test")
	after := before
	for _, e := range evs {
		if after, err = vcard.Evolve(after, e); err != nil {
			break
		}
	}
	if err == nil {
		m.states[acct] = after
	}
	return before, after, err
}

// refreshes counts RefreshPresence calls by account.
type refreshes map[string]int

func (r refreshes) RefreshPresence(_ context.Context, acct string) { r[acct]++ }

func setup(t *testing.T) (*mux.Mux, *memVCards, refreshes) {
	t.Helper()
	store := &memVCards{states: map[string]vcard.State{"juliet@localhost": {}, "romeo@localhost": {}}}
	host := refreshes{}
	m := mux.New()
	New(Config{VCards: store, MaxBytes: 1024}, host).Register(m)
	return m, store, host
}

func vc(inner string) string { return "<vCard xmlns='vcard-temp'>" + inner + "</vCard>" }

func photo(b64 string) string {
	return "<PHOTO><TYPE>image/png</TYPE><BINVAL>" + b64 + "</BINVAL></PHOTO>"
}

// The account gets and sets its own vCard (empty before it sets one);
// anyone gets it at the account's bare JID; nobody else sets it; an
// account without one, or no account, is item-not-found; the server has
// none; a vCard over the limit or with a photo that is not base64 is
// refused. vcard-temp is advertised on the server and on the account.
func TestVCardIQs(t *testing.T) {
	m, _, host := setup(t)
	for _, d := range []mux.Dest{mux.Server, mux.Account, mux.Contact} {
		if !strings.Contains(strings.Join(m.Features(d), " "), "vcard-temp") {
			t.Errorf("%s does not advertise vcard-temp: %v", d, m.Features(d))
		}
	}
	juliet := &muxtest.Session{Full: jid.MustParse("juliet@localhost/balcony")}
	romeo := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	stranger := &muxtest.Session{Full: jid.MustParse("tybalt@elsewhere.example/street")}
	withPhoto := vc("<FN>Juliet</FN>" + photo(png1))
	for _, tc := range []struct {
		name string
		s    *muxtest.Session
		d    mux.Dest
		from string // the address asked
		iq   string
		want []string
		not  string
	}{
		{"own, before any", juliet, mux.Server, "", "<iq type='get' id='g0'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='result'", "<vCard xmlns='vcard-temp'/>"}, "error"},
		{"another's, before any", romeo, mux.Anyone, "juliet@localhost", "<iq type='get' id='g1' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='error'", "<item-not-found "}, ""},
		{"own set", juliet, mux.Server, "", "<iq type='set' id='s1'>" + withPhoto + "</iq>", []string{"type='result'"}, "error"},
		{"own, after", juliet, mux.Account, "juliet@localhost", "<iq type='get' id='g2' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='result'", "<BINVAL>" + png1 + "</BINVAL>", "<FN>Juliet</FN>"}, "error"},
		{"a contact's get", romeo, mux.Anyone, "juliet@localhost", "<iq type='get' id='g3' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='result'", "from='juliet@localhost'", "<BINVAL>" + png1}, "error"},
		{"a stranger's get from another server", stranger, mux.Anyone, "juliet@localhost", "<iq type='get' id='g4' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='result'", "<BINVAL>" + png1}, "error"},
		{"setting another's", romeo, mux.Anyone, "juliet@localhost", "<iq type='set' id='s2' to='juliet@localhost'>" + vc("<FN>Romeo was here</FN>") + "</iq>",
			[]string{"type='error'", "<forbidden "}, ""},
		{"no such account", romeo, mux.Anyone, "nurse@localhost", "<iq type='get' id='g5' to='nurse@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='error'", "<item-not-found "}, ""},
		{"the server's", romeo, mux.Server, "localhost", "<iq type='get' id='g6' to='localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"type='error'", "<item-not-found "}, ""},
		{"over the limit", juliet, mux.Server, "", "<iq type='set' id='s3'>" + vc(photo(strings.Repeat(png1, 12))) + "</iq>",
			[]string{"type='error'", "<not-acceptable ", "limit is 1024"}, ""},
		{"not base64", juliet, mux.Server, "", "<iq type='set' id='s4'>" + vc(photo("!!!")) + "</iq>",
			[]string{"type='error'", "<bad-request "}, ""},
		{"still the first", romeo, mux.Anyone, "juliet@localhost", "<iq type='get' id='g7' to='juliet@localhost'><vCard xmlns='vcard-temp'/></iq>",
			[]string{"<FN>Juliet</FN>", "<BINVAL>" + png1}, "Romeo was here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, tc.d, tc.s, tc.from, tc.iq)
			if !handled || err != nil {
				t.Fatalf("handled %v, %v", handled, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer %q lacks %q", got, w)
				}
			}
			if tc.not != "" && strings.Contains(got, tc.not) {
				t.Errorf("answer %q has %q", got, tc.not)
			}
		})
	}
	if host["juliet@localhost"] != 1 || len(host) != 1 {
		t.Errorf("presence refreshed %v, want once for juliet's new avatar", host)
	}
}

// The account's presence carries its vCard's avatar hash, an empty photo
// when the vCard has none, nothing before any vCard or when the client
// said something itself; the presence is broadcast again only when that
// changes.
func TestAvatarInPresence(t *testing.T) {
	m, _, host := setup(t)
	juliet := &muxtest.Session{Full: jid.MustParse("juliet@localhost/balcony")}
	dress := func(p string) string {
		t.Helper()
		e, err := muxtest.Parse(p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range m.PresenceChildren() {
			if c := f(context.Background(), "juliet@localhost", e); c != "" {
				out = append(out, c)
			}
		}
		return strings.Join(out, "")
	}
	set := func(x string) {
		t.Helper()
		if got, _, _ := muxtest.Ask(m, mux.Server, juliet, "", "<iq type='set' id='s'>"+x+"</iq>"); !strings.Contains(got, "type='result'") {
			t.Fatalf("set: %s", got)
		}
	}
	const plain = "<presence><show>away</show></presence>"
	if got := dress(plain); got != "" {
		t.Errorf("before any vCard: %q", got)
	}
	set(vc("<FN>Juliet</FN>"))
	if got := dress(plain); got != "<x xmlns='vcard-temp:x:update'><photo/></x>" {
		t.Errorf("a vCard without a photo: %q", got)
	}
	set(vc("<FN>Juliet</FN>" + photo(png1)))
	if got := dress(plain); got != "<x xmlns='vcard-temp:x:update'><photo>"+pngSHA1+"</photo></x>" {
		t.Errorf("a vCard with a photo: %q", got)
	}
	if got := dress("<presence><x xmlns='vcard-temp:x:update'/></presence>"); got != "" {
		t.Errorf("the client said it itself: %q", got)
	}
	set(vc("<FN>Jules</FN>" + photo(png1))) // the same avatar
	set(vc("<PHOTO><EXTVAL>https://example.com/j.png</EXTVAL></PHOTO>"))
	if got := dress(plain); got != "" {
		t.Errorf("a photo elsewhere: %q", got)
	}
	// Refreshed for: no vCard -> <photo/>, -> the hash, -> nothing said.
	if host["juliet@localhost"] != 3 {
		t.Errorf("presence refreshed %d times, want 3", host["juliet@localhost"])
	}
}
