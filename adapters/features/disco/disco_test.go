package disco_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/features/disco"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	"annals.im/annals/adapters/stanza"
)

// What disco answers is what was registered, whoever registered it and
// in whatever order: a feature registered after disco is still listed.
func TestAnswersFromRegistrations(t *testing.T) {
	m := mux.New()
	disco.Register(m, "Annals")
	// Features of other packages, as they would register.
	m.Handle(mux.Server, "urn:xmpp:ping", func(context.Context, *mux.IQ) error { return nil }, "urn:xmpp:ping")
	m.Handle(mux.Server, "jabber:iq:version", func(context.Context, *mux.IQ) error { return nil }, "jabber:iq:version")
	m.Feature(mux.Server, "urn:xmpp:carbons:2")
	m.Item(mux.Server, mux.Item{JID: "conference.localhost", Name: "Chatrooms"})
	m.Identity(mux.Account, mux.Identity{Category: "pubsub", Type: "pep"})
	s := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	for _, tc := range []struct {
		name    string
		dest    mux.Dest
		iq      string
		want    []string
		notWant []string
	}{
		{"server info", mux.Server, "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "'/></iq>",
			[]string{"<identity category='server' type='im' name='Annals'/>", "var='urn:xmpp:ping'", "var='jabber:iq:version'",
				"var='urn:xmpp:carbons:2'", "var='" + disco.NSInfo + "'", "var='" + disco.NSItems + "'"},
			[]string{"pubsub"}},
		{"caps node", mux.Server, "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "' node='n#v'/></iq>",
			[]string{"node='n#v'", "category='server'"}, nil},
		{"server items", mux.Server, "<iq type='get' id='1'><query xmlns='" + disco.NSItems + "'/></iq>",
			[]string{"<item jid='conference.localhost' name='Chatrooms'/>"}, nil},
		{"items of a node", mux.Server, "<iq type='get' id='1'><query xmlns='" + disco.NSItems + "' node='x'/></iq>",
			[]string{"node='x'"}, []string{"<item"}},
		{"account info", mux.Account, "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "'/></iq>",
			[]string{"category='account' type='registered'", "category='pubsub' type='pep'"},
			[]string{"jabber:iq:version", "carbons"}},
		{"contact info", mux.Contact, "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "'/></iq>",
			[]string{"category='account' type='registered'"},
			[]string{"pubsub", "jabber:iq:version", "carbons"}},
		{"a set", mux.Server, "<iq type='set' id='1'><query xmlns='" + disco.NSInfo + "'/></iq>",
			[]string{"type='error'", "bad-request"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, tc.dest, s, "", tc.iq)
			if !handled || err != nil {
				t.Fatalf("handled %v, err %v", handled, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}

// nodes keeps one node, "menu", shown to romeo only.
type nodes struct{}

func (nodes) NodeInfo(s mux.Session, at, node string) ([]mux.Identity, []string, error) {
	switch {
	case node != "menu":
		return nil, nil, mux.ErrNoNode
	case s.JID().Localpart() != "romeo":
		return nil, nil, stanza.Errorf("forbidden", "")
	}
	return []mux.Identity{{Category: "automation", Type: "command-list"}}, []string{"urn:example:menu"}, nil
}

func (nodes) NodeItems(s mux.Session, at, node string) ([]mux.Item, error) {
	if node != "menu" {
		return nil, mux.ErrNoNode
	}
	if s.JID().Localpart() != "romeo" {
		return nil, nil
	}
	return []mux.Item{{JID: at, Node: "menu#1", Name: "One"}}, nil
}

// A node a feature keeps is described by the feature, as it sees the
// asker (mux.NodeDisco), at the address asked; other nodes as before.
func TestNodes(t *testing.T) {
	m := mux.New()
	disco.Register(m, "Annals")
	m.Nodes(mux.Server, nodes{})
	romeo := &muxtest.Session{Full: jid.MustParse("romeo@localhost/orchard")}
	tybalt := &muxtest.Session{Full: jid.MustParse("tybalt@localhost/street")}
	for _, tc := range []struct {
		name    string
		s       *muxtest.Session
		from    string
		iq      string
		want    []string
		notWant []string
	}{
		{"info", romeo, "localhost", "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "' node='menu'/></iq>",
			[]string{"node='menu'", "<identity category='automation' type='command-list'/>", "<feature var='urn:example:menu'/>"},
			[]string{"category='server'", disco.NSItems}},
		{"refused", tybalt, "localhost", "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "' node='menu'/></iq>",
			[]string{"type='error'", "<forbidden "}, nil},
		{"another node", tybalt, "localhost", "<iq type='get' id='1'><query xmlns='" + disco.NSInfo + "' node='n#v'/></iq>",
			[]string{"node='n#v'", "category='server'"}, nil},
		{"items", romeo, "localhost", "<iq type='get' id='1'><query xmlns='" + disco.NSItems + "' node='menu'/></iq>",
			[]string{"<query xmlns='" + disco.NSItems + "' node='menu'><item jid='localhost' node='menu#1' name='One'/></query>"}, nil},
		{"items without a to", romeo, "", "<iq type='get' id='1'><query xmlns='" + disco.NSItems + "' node='menu'/></iq>",
			[]string{"<item jid='localhost' node='menu#1'"}, nil},
		{"no items for another", tybalt, "localhost", "<iq type='get' id='1'><query xmlns='" + disco.NSItems + "' node='menu'/></iq>",
			[]string{"type='result'"}, []string{"<item"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, handled, err := muxtest.Ask(m, mux.Server, tc.s, tc.from, tc.iq)
			if !handled || err != nil {
				t.Fatalf("handled %v, err %v", handled, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("%q has %q", got, w)
				}
			}
		})
	}
}
