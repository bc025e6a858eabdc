package mirror

import (
	"errors"
	"strings"
	"testing"

	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/mirror"
	"annals.im/annals/domain/wellformed"
)

const hall = "hall@conference.capulet.example"

// What a master sends its mirror reads as the replica's command: the
// sequence, the occupant of a presence, a message (accepting a post of
// the mirror's own by its origin-id), the subject; the stanza handed on
// loses the sequence element and nothing else.
func TestRead(t *testing.T) {
	seq := "<dmuc xmlns='urn:xmpp:dmuc:0' seq='7'/>"
	for _, tc := range []struct {
		name, in string
		check    func(t *testing.T, a mirror.Applied)
	}{
		{"a join", "<presence from='" + hall + "/Wayne' to='mirror.montague.example'><x xmlns='http://jabber.org/protocol/muc#user'>" +
			"<item affiliation='member' role='participant' jid='wayne@montague.example/annals-rooms'/></x><show>away</show>" + seq + "</presence>",
			func(t *testing.T, a mirror.Applied) {
				o := a.Occupant
				if a.Kind != mirror.Presence || a.Gone || o.Nick != "Wayne" || o.Role != "participant" || o.Affiliation != "member" ||
					o.JID != "wayne@montague.example/annals-rooms" || o.Show != "away" {
					t.Errorf("%+v %+v", a, o)
				}
			}},
		{"a departure", "<presence type='unavailable' from='" + hall + "/Wayne'><x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/></x>" + seq + "</presence>",
			func(t *testing.T, a mirror.Applied) {
				if a.Kind != mirror.Presence || !a.Gone || a.Occupant.Nick != "Wayne" {
					t.Errorf("%+v", a)
				}
			}},
		{"a message", "<message type='groupchat' from='" + hall + "/Juliet'><body>hi</body>" + seq + "<stanza-id xmlns='urn:xmpp:sid:0' by='" + hall + "' id='r1'/></message>",
			func(t *testing.T, a mirror.Applied) {
				if a.Kind != mirror.Message || a.Accepts != "" || strings.Contains(a.Stanza, "dmuc") || !strings.Contains(a.Stanza, "<body>hi</body>") ||
					!strings.Contains(a.Stanza, "id='r1'") || strings.Contains(a.Stanza, " to=") {
					t.Errorf("%+v", a)
				}
			}},
		{"a post of ours coming back", "<message type='groupchat' from='" + hall + "/Wayne'><body>mine</body><origin-id xmlns='urn:xmpp:sid:0' id='l-9'/>" + seq + "</message>",
			func(t *testing.T, a mirror.Applied) {
				if a.Kind != mirror.Message || a.Accepts != "l-9" {
					t.Errorf("%+v", a)
				}
			}},
		{"the subject", "<message type='groupchat' from='" + hall + "/Juliet'><subject>Verona</subject>" + seq + "</message>",
			func(t *testing.T, a mirror.Applied) {
				if a.Kind != mirror.Subject || a.Subject != "Verona" {
					t.Errorf("%+v", a)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := muxtest.Parse(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			a, err := Read(e)
			if err != nil {
				t.Fatal(err)
			}
			if a.Seq != 7 {
				t.Errorf("seq %d", a.Seq)
			}
			tc.check(t, a)
		})
	}
	for _, bad := range []string{
		"<message type='groupchat' from='" + hall + "/Juliet'><body>hi</body></message>",                                        // no sequence
		"<message type='groupchat' from='" + hall + "/Juliet'><body>hi</body><dmuc xmlns='urn:xmpp:dmuc:0' seq='x'/></message>", // not a number
		"<message type='groupchat' from='" + hall + "/Juliet'><body>hi</body><dmuc xmlns='urn:xmpp:dmuc:0' seq='0'/></message>", // none
	} {
		e, _ := muxtest.Parse(bad)
		if _, err := Read(e); !errors.Is(err, ErrNoSequence) {
			t.Errorf("%s: %v, want no sequence", bad, err)
		}
	}
	for _, bad := range []string{
		"<message type='chat' from='" + hall + "/Juliet'><body>hi</body>" + seq + "</message>",  // not groupchat
		"<presence from='" + hall + "'>" + seq + "</presence>",                                  // not an occupant
		"<message type='groupchat' from='capulet.example'><body>hi</body>" + seq + "</message>", // not a room
	} {
		e, _ := muxtest.Parse(bad)
		if _, err := Read(e); err == nil {
			t.Errorf("%s read", bad)
		}
	}
}

// A roster reads as the room's occupants at its sequence.
func TestReadRoster(t *testing.T) {
	q, err := muxtest.Parse("<roster xmlns='urn:xmpp:dmuc:0' seq='12'><item affiliation='owner' role='moderator' name='Juliet' jid='juliet@capulet.example'/>" +
		"<item affiliation='none' role='participant' name='Wayne' show='xa'/><item/></roster>")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ReadRoster(q)
	if err != nil || a.Seq != 12 || a.Kind != mirror.Roster || len(a.Occupants) != 2 || a.Occupants[0].Role != "moderator" || a.Occupants[1].Show != "xa" {
		t.Fatalf("%+v %v", a, err)
	}
	q, _ = muxtest.Parse("<roster xmlns='urn:xmpp:dmuc:0'/>")
	if _, err := ReadRoster(q); !errors.Is(err, ErrNoSequence) {
		t.Fatalf("a roster without its sequence: %v", err)
	}
}

// FuzzRead: whatever a master sends, what the mirror would hand on is
// namespace-well-formed and carries no sequence element of its own.
func FuzzRead(f *testing.F) {
	f.Add([]byte("<message type='groupchat' from='" + hall + "/J'><body>hi</body><dmuc xmlns='urn:xmpp:dmuc:0' seq='7'/></message>"))
	f.Add([]byte("<presence from='" + hall + "/W'><x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/></x><dmuc xmlns='urn:xmpp:dmuc:0' seq='3'/></presence>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := stanza.Parse(in, wellformed.DefaultMaxDepth)
		if err != nil {
			return
		}
		a, err := Read(e)
		if err != nil {
			return
		}
		if _, err := wellformed.Canonical(a.Stanza); err != nil {
			t.Fatalf("not namespace-well-formed: %v\n%s", err, a.Stanza)
		}
		back, err := stanza.Parse([]byte(a.Stanza), wellformed.DefaultMaxDepth)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := back.Named(nsDMUC0, "dmuc"); ok {
			t.Fatalf("the sequence element survived: %s", a.Stanza)
		}
	})
}
