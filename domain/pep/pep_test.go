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
		{"bad access model", State{}, Publish{Node: bm, Item: Item{Payload: "<x/>"}, Options: &Config{AccessModel: "authorize"}}, ErrInvalid},
		{"too many roster groups", State{}, Publish{Node: bm, Item: Item{Payload: "<x/>"}, Options: &Config{AccessModel: Roster, RosterGroups: make([]string, MaxRosterGroups+1)}}, ErrInvalid},
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

// The account's quotas: a payload over MaxPayload, a node past MaxNodes, a
// max_items past MaxItems and a publication that would take the account
// past MaxBytes are refused; replacing an item, publishing to an existing
// node and a publication that shrinks the account are not.
func TestLimits(t *testing.T) {
	lim := Limits{MaxPayload: 10, MaxItems: 3, MaxNodes: 2, MaxBytes: 40}
	pub := func(node, id, payload string) Publish {
		return Publish{Node: node, Item: Item{ID: id, Payload: payload}, Options: &Config{MaxItems: 3}, Limits: lim}
	}
	// Node "a" (1 byte) with item "1" (1+5 bytes): 7 bytes; node "b" likewise: 14.
	two := fold(t, pub("a", "1", "<x1/>"), pub("b", "1", "<x2/>"))
	// 52 bytes, published before the quota.
	big := fold(t, Publish{Node: "a", Item: Item{ID: "1", Payload: strings.Repeat("y", 50)}, Options: &Config{MaxItems: 3}})
	tests := []struct {
		name string
		s    State
		c    Publish
		err  error
	}{
		{"payload at the limit", State{}, pub("a", "1", strings.Repeat("p", 10)), nil},
		{"payload over the limit", State{}, pub("a", "1", strings.Repeat("p", 11)), ErrPayloadTooBig},
		{"no limits", State{}, Publish{Node: "a", Item: Item{ID: "1", Payload: strings.Repeat("p", 1<<20)}}, nil},
		{"third node", two, pub("c", "1", "<x/>"), ErrTooManyNodes},
		{"existing node", two, pub("b", "2", "<x/>"), nil},
		{"max_items at the limit", State{}, Publish{Node: "a", Item: Item{ID: "1", Payload: "<x/>"}, Options: &Config{MaxItems: 3}, Limits: lim}, nil},
		{"max_items over the limit", State{}, Publish{Node: "a", Item: Item{ID: "1", Payload: "<x/>"}, Options: &Config{MaxItems: 4}, Limits: lim}, ErrInvalid},
		{"max_items over the constant without limits", State{}, Publish{Node: "a", Item: Item{ID: "1", Payload: "<x/>"}, Options: &Config{MaxItems: MaxItems + 1}}, ErrInvalid},
		// 14 + 1 ("2") + 10 = 25, then 36; an item of 5 more bytes fails.
		{"bytes under the quota", two, pub("a", "2", strings.Repeat("p", 10)), nil},
		{"bytes over the quota", fold(t, pub("a", "1", "<x1/>"), pub("b", "1", "<x2/>"), pub("b", "2", strings.Repeat("p", 10)), pub("a", "3", strings.Repeat("q", 10))),
			pub("b", "4", "<x/>"), ErrQuota},
		{"bytes at the quota", fold(t, pub("a", "1", "<x1/>"), pub("b", "1", "<x2/>"), pub("b", "2", strings.Repeat("p", 10)), pub("a", "3", strings.Repeat("q", 10))),
			pub("b", "4", "<>"), nil},
		{"an account over a lowered quota may shrink", big, pub("a", "1", "<small/>"), nil},
		{"an account over a lowered quota may not grow", big, pub("a", "2", "<x/>"), ErrQuota},
	}
	for _, tt := range tests {
		if _, err := Decide(tt.s, tt.c, event.NewIDs(), now, ""); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
}

// Who may read a node of another account (XEP-0060 §4.5): the owner
// always; anyone an open one; a presence one whom the owner shares its
// presence with; a roster one the contacts in its groups; a whitelist
// one nobody else.
func TestCanRead(t *testing.T) {
	node := func(model string, groups ...string) Node {
		return Node{Config: Config{AccessModel: model, MaxItems: 1, RosterGroups: groups}}
	}
	owner, stranger := Reader{Owner: true}, Reader{}
	friend := Reader{Subscribed: true, InRoster: true, Groups: []string{"Friends"}}
	asked := Reader{InRoster: true, Groups: []string{"Work"}} // in the roster, not shown presence
	for _, c := range []struct {
		name string
		n    Node
		r    Reader
		want error
	}{
		{"open to a stranger", node(Open), stranger, nil},
		{"presence to a stranger", node(Presence), stranger, ErrNotSubscribed},
		{"presence to a contact without a subscription", node(Presence), asked, ErrNotSubscribed},
		{"presence to a subscriber", node(Presence), friend, nil},
		{"presence to the owner", node(Presence), owner, nil},
		{"roster to its group", node(Roster, "Friends"), friend, nil},
		{"roster to another group", node(Roster, "Friends"), asked, ErrNotInRosterGroup},
		{"roster to a stranger", node(Roster, "Friends"), stranger, ErrNotInRosterGroup},
		{"whitelist to a subscriber", node(Whitelist), friend, ErrClosedNode},
		{"whitelist to the owner", node(Whitelist), owner, nil},
	} {
		if err := c.n.CanRead(c.r); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// An item whose payload's key is destroyed (adapters/sealing opens it with
// Erased) is dropped as if retracted, its node keeping its configuration;
// WithoutItems (an account's erasure) empties every node.
func TestEvolveErased(t *testing.T) {
	wl := &Config{AccessModel: Whitelist, MaxItems: 10}
	s := fold(t,
		Publish{Node: bm, Item: Item{ID: "a@conf", Payload: "<conference/>"}, Options: wl},
		Publish{Node: bm, Item: Item{ID: "b@conf", Payload: "<conference/>"}, Options: wl})
	erased, err := event.New(event.NewIDs(), now, TypeItemPublished, Schema, "test",
		ItemPublished{Node: bm, Item: Item{ID: "a@conf", Erased: true}, Config: *wl})
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Evolve(s, erased); err != nil {
		t.Fatal(err)
	}
	n := s.Nodes[bm]
	if len(n.Items) != 1 || n.Items[0].ID != "b@conf" || n.Config.MaxItems != 10 {
		t.Fatalf("after an erased publication: %+v", n)
	}
	empty := s.WithoutItems()
	if len(empty.Nodes[bm].Items) != 0 || empty.Nodes[bm].Config.AccessModel != Whitelist || len(s.Nodes[bm].Items) != 1 {
		t.Fatalf("WithoutItems: %+v (before: %+v)", empty, s)
	}
}
