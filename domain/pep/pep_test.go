package pep

import (
	"errors"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
)

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func fold(t *testing.T, cmds ...any) State {
	t.Helper()
	var s State
	for _, c := range cmds {
		evs, err := Decide(s, c, event.NewIDs(), now, "test")
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		for _, e := range evs {
			if s, err = Evolve(s, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

const bm = "urn:xmpp:bookmarks:1"

func TestPublishRetract(t *testing.T) {
	wl := &Config{AccessModel: Whitelist, MaxItems: MaxItems}
	s := fold(t,
		Publish{Node: bm, Item: Item{ID: "a@conf", Payload: "<conference/>"}, Options: wl},
		Publish{Node: bm, Item: Item{ID: "b@conf", Payload: "<conference/>"}, Options: wl},
		Publish{Node: bm, Item: Item{ID: "a@conf", Payload: "<conference autojoin='true'/>"}, Options: wl},
	)
	n := s.Nodes[bm]
	if len(n.Items) != 2 || n.Items[1].ID != "a@conf" || n.Config.AccessModel != Whitelist {
		t.Fatalf("%+v", n)
	}
	s = fold(t, Publish{Node: "nick", Item: Item{ID: "1", Payload: "<nick/>"}}, Publish{Node: "nick", Item: Item{ID: "2", Payload: "<nick/>"}})
	if items := s.Nodes["nick"].Items; len(items) != 1 || items[0].ID != "2" {
		t.Fatalf("max_items 1 by default: %+v", items)
	}
	tests := []struct {
		name string
		s    State
		c    any
		err  error
	}{
		{"no payload", State{}, Publish{Node: bm}, ErrInvalid},
		{"bad access model", State{}, Publish{Node: bm, Item: Item{Payload: "<x/>"}, Options: &Config{AccessModel: "roster"}}, ErrInvalid},
		{"options differ from the node", fold(t, Publish{Node: bm, Item: Item{ID: "a", Payload: "<x/>"}, Options: wl}),
			Publish{Node: bm, Item: Item{Payload: "<x/>"}, Options: &Config{AccessModel: Open}}, ErrPrecondition},
		{"retract unknown", State{}, Retract{Node: bm, ID: "nope"}, ErrItemNotFound},
	}
	for _, tt := range tests {
		if _, err := Decide(tt.s, tt.c, event.NewIDs(), now, ""); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	s = fold(t, Publish{Node: bm, Item: Item{ID: "a", Payload: "<x/>"}, Options: wl}, Retract{Node: bm, ID: "a"})
	if len(s.Nodes[bm].Items) != 0 {
		t.Fatalf("retracted item still there: %+v", s.Nodes[bm])
	}
}

// Passwords given with a publication never reach its event: the event
// says only that the item has some.
func TestPasswordsStayOutOfTheEvent(t *testing.T) {
	it := Item{ID: "hall@conf", Payload: "<conference xmlns='urn:xmpp:bookmarks:1'><password/></conference>"}
	for _, tt := range []struct {
		passwords []string
		has       bool
	}{{[]string{"s3cret"}, true}, {[]string{"", "s3cret"}, true}, {[]string{""}, false}, {nil, false}} {
		evs, err := Decide(State{}, Publish{Node: bm, Item: it, Passwords: tt.passwords}, event.NewIDs(), now, "")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(evs[0].Data), "s3cret") {
			t.Fatalf("a password in the event: %s", evs[0].Data)
		}
		evs[0].Stream, evs[0].Version = "account-juliet@example.com", 1
		s, err := Evolve(State{}, evs[0])
		if got, _ := s.Nodes[bm].Item("hall@conf"); err != nil || got.HasPassword != tt.has {
			t.Errorf("%v: item %+v %v", tt.passwords, got, err)
		}
	}
}
