package archive_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	domain "annals.im/annals/domain/archive"
	"annals.im/annals/domain/mirror"
)

// A room mirrored here (DMUC3): the accounts the mirror marks as its own
// are in it from their entry (or a roster naming them) to their exit (a
// roster that does not name one ends nothing: it comes when the mirror
// is attached again, before the accounts here have all joined again),
// and the master's messages land in their archives under the master's
// IDs; anyone else's presence changes nothing. Both models keep the
// same.
func TestMirroredRoom(t *testing.T) {
	const agora = "agora@conference.x" // compareRows takes accounts at conference.x for rooms
	w := newTwin(t)
	seq := uint64(0)
	apply := func(a mirror.Applied) {
		seq++
		a.Seq = seq
		w.emit(mirror.Stream(agora), mirror.TypeApplied, mirror.Schema, a)
	}
	presence := func(nick, local string, gone bool) {
		apply(mirror.Applied{Kind: mirror.Presence, Occupant: &mirror.Occupant{Nick: nick, Local: local}, Gone: gone})
	}
	say := func(id string) {
		w.known = append(w.known, id)
		apply(mirror.Applied{Kind: mirror.Message, Nick: "Paris", ID: id,
			Stanza: fmt.Sprintf("<message xmlns='jabber:client' type='groupchat' from='%s/Paris'><body>%s</body></message>", agora, id)})
	}
	apply(mirror.Applied{Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Romeo", Local: "romeo@x"}, {Nick: "Paris"}}})
	say("m1")
	presence("Juliet", "juliet@x", false)
	presence("Tybalt", "", false) // not ours: no stay
	say("m2")
	presence("Romeo", "romeo@x", true)
	say("m3")
	apply(mirror.Applied{Kind: mirror.Roster, Occupants: []mirror.Occupant{{Nick: "Paris"}}}) // juliet, not named yet, joins again
	say("m4")
	presence("Juliet", "juliet@x", true)
	say("m4b")
	presence("Nurse", "nurse@x", false)
	say("m5")
	w.chat("romeo@x", "juliet@x", false)

	ctx := context.Background()
	for _, c := range []struct {
		acct string
		want []string
	}{{"romeo@x", []string{"m1", "m2"}}, {"juliet@x", []string{"m2", "m3", "m4"}}, {"nurse@x", []string{"m5"}}, {"tybalt@x", []string{}}} {
		for _, r := range []*mirrorReader{{"copies", w.copies.reader}, {"stays", w.stays.reader}} {
			p, err := r.reader.Query(ctx, c.acct, domain.Query{Groupchat: true, With: agora})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s, %s: %v; want %v", r.name, c.acct, got, c.want)
			}
		}
	}
	w.compare("a mirrored room")
}

type mirrorReader struct {
	name   string
	reader interface {
		Query(context.Context, string, domain.Query) (domain.Page, error)
	}
}
