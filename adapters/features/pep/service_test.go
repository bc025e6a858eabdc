package pep

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/mux/muxtest"
	pepdomain "annals.im/annals/domain/pep"
	"annals.im/annals/domain/roster"
)

// memPEP keeps one node's items and the passwords beside them, applying
// publications as the account stream would, without its limits.
type memPEP struct {
	node      pepdomain.Node
	passwords map[string][]string
	published []pepdomain.Publish
}

func (m *memPEP) Node(context.Context, string, string) (pepdomain.Node, error) { return m.node, nil }

func (m *memPEP) Nodes(context.Context, string) (map[string]pepdomain.Node, error) {
	return map[string]pepdomain.Node{"node": m.node}, nil
}

func (m *memPEP) Do(_ context.Context, _ string, cmd any) error {
	if p, ok := cmd.(pepdomain.Publish); ok {
		p.Item.HasPassword = len(p.Passwords) > 0 // as the account stream records it
		m.published = append(m.published, p)
		m.node.Items = append(m.node.Items, p.Item)
		if m.passwords == nil {
			m.passwords = map[string][]string{}
		}
		m.passwords[p.Item.ID] = p.Passwords
	}
	return nil
}

func (m *memPEP) Passwords(context.Context, string, string) (map[string][]string, error) {
	return m.passwords, nil
}

// hostOf is a core with one available session.
type hostOf struct{ s mux.Session }

func (h hostOf) Available(string) []mux.Session { return []mux.Session{h.s} }

// A bookmark published by a client is logged without its password, which
// is kept beside the log, and the account's available clients are told;
// its own clients read it back with the password. Registration advertises
// PEP on the account and private storage on the server.
func TestPublishBookmark(t *testing.T) {
	store := &memPEP{}
	desk := &muxtest.Session{Full: jid.MustParse("juliet@localhost/desk")}
	s := New(Config{PEP: store}, hostOf{desk})
	m := mux.New()
	s.Register(m)
	if f := m.Features(mux.Server); len(f) != 1 || f[0] != nsPrivate {
		t.Errorf("server features %v", f)
	}
	if ids := m.Identities(mux.Account); len(ids) != 1 || ids[0].Type != "pep" {
		t.Errorf("account identities %v", ids)
	}
	phone := &muxtest.Session{Full: jid.MustParse("juliet@localhost/phone")}
	got, handled, err := muxtest.Ask(m, mux.Account, phone, "", "<iq type='set' id='b'><pubsub xmlns='"+nsPubsub+"'><publish node='"+nsBookmarks+
		"'><item id='hall@conference.localhost'><conference xmlns='"+nsBookmarks+"' autojoin='true'><nick>J</nick><password>s3cret</password></conference></item></publish></pubsub></iq>")
	if !handled || err != nil || !strings.Contains(got, "type='result'") {
		t.Fatalf("publish: %q %v %v", got, handled, err)
	}
	if len(store.published) != 1 || strings.Contains(store.published[0].Item.Payload, "s3cret") ||
		len(store.published[0].Passwords) != 1 || store.published[0].Passwords[0] != "s3cret" {
		t.Fatalf("logged %+v", store.published)
	}
	if n := strings.Join(desk.Sent, ""); !strings.Contains(n, "<event xmlns='http://jabber.org/protocol/pubsub#event'>") || !strings.Contains(n, "hall@conference.localhost") {
		t.Errorf("the account's client was not told: %q", n)
	}
	got, _, _ = muxtest.Ask(m, mux.Account, phone, "", "<iq type='get' id='g'><pubsub xmlns='"+nsPubsub+"'><items node='"+nsBookmarks+"'/></pubsub></iq>")
	if !strings.Contains(got, "s3cret") {
		t.Errorf("the own client reads the bookmark without its password: %q", got)
	}
}

// Private XML storage (XEP-0049) keeps one element per namespace, as a
// whitelist PEP node's item (XEP-0223); a get before any set gets the
// element back empty; one element only, and never in a reserved
// namespace.
func TestPrivateStorage(t *testing.T) {
	store := &memPEP{}
	desk := &muxtest.Session{Full: jid.MustParse("juliet@localhost/desk")}
	s := New(Config{PEP: store}, hostOf{desk})
	m := mux.New()
	s.Register(m)
	phone := &muxtest.Session{Full: jid.MustParse("juliet@localhost/phone")}
	ask := func(x string) string {
		t.Helper()
		got, handled, err := muxtest.Ask(m, mux.Account, phone, "", x)
		if !handled || err != nil {
			t.Fatalf("%s: %v %v", x, handled, err)
		}
		return got
	}
	if got := ask("<iq type='get' id='g0'><query xmlns='jabber:iq:private'><prefs xmlns='exodus:prefs'/></query></iq>"); !strings.Contains(got, "<prefs xmlns='exodus:prefs'/>") {
		t.Errorf("nothing stored yet: %q", got)
	}
	if got := ask("<iq type='set' id='s'><query xmlns='jabber:iq:private'><prefs xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></prefs></query></iq>"); !strings.Contains(got, "type='result'") {
		t.Fatalf("set: %q", got)
	}
	if len(store.published) != 1 || store.published[0].Node != "exodus:prefs" || store.published[0].Options == nil ||
		store.published[0].Options.AccessModel != pepdomain.Whitelist || store.published[0].Item.ID != privateItem {
		t.Fatalf("published %+v", store.published)
	}
	if got := ask("<iq type='get' id='g1'><query xmlns='jabber:iq:private'><prefs xmlns='exodus:prefs'/></query></iq>"); !strings.Contains(got, "<defaultnick>Hamlet</defaultnick>") {
		t.Errorf("read back: %q", got)
	}
	for _, bad := range []string{
		"<iq type='set' id='b1'><query xmlns='jabber:iq:private'><a xmlns='x:a'/><b xmlns='x:b'/></query></iq>",
		"<iq type='set' id='b2'><query xmlns='jabber:iq:private'><message xmlns='jabber:client'/></query></iq>",
		"<iq type='get' id='b3'><query xmlns='jabber:iq:private'/></iq>",
	} {
		if got := ask(bad); !strings.Contains(got, "type='error'") {
			t.Errorf("%s: %q", bad, got)
		}
	}
}

// rosterOf is an owner's roster.
type rosterOf roster.State

func (r rosterOf) Roster(context.Context, string) (roster.State, error) { return roster.State(r), nil }

// Another account's node: an items request is answered from it, as its
// access model allows (a roster node to the contacts of its groups), and
// nothing else of it is anyone else's to do (a publication: forbidden).
func TestOthersNodes(t *testing.T) {
	store := &memPEP{node: pepdomain.Node{Config: pepdomain.Config{AccessModel: pepdomain.Roster, MaxItems: 1, RosterGroups: []string{"Friends"}},
		Items: []pepdomain.Item{{ID: "current", Payload: "<mood xmlns='http://jabber.org/protocol/mood'><happy/></mood>"}}}}
	owner := "juliet@localhost"
	s := New(Config{PEP: store, Rosters: rosterOf{Items: map[string]roster.Item{
		"romeo@localhost":  {Contact: "romeo@localhost", Groups: []string{"Friends"}, Subscription: roster.Both},
		"tybalt@localhost": {Contact: "tybalt@localhost", Groups: []string{"Family"}, Subscription: roster.Both},
	}}}, hostOf{})
	m := mux.New()
	s.Register(m)
	ask := func(who, x string) string {
		t.Helper()
		got, handled, err := muxtest.Ask(m, mux.Anyone, &muxtest.Session{Full: jid.MustParse(who + "/desk")}, owner, x)
		if !handled || err != nil {
			t.Fatalf("%s: %v %v", x, handled, err)
		}
		return got
	}
	get := "<iq type='get' id='g'><pubsub xmlns='" + nsPubsub + "'><items node='http://jabber.org/protocol/mood'/></pubsub></iq>"
	if got := ask("romeo@localhost", get); !strings.Contains(got, "<happy/>") || !strings.Contains(got, "from='"+owner+"'") {
		t.Errorf("a contact in the group: %q", got)
	}
	if got := ask("tybalt@localhost", get); !strings.Contains(got, "not-in-roster-group") {
		t.Errorf("a contact in another group: %q", got)
	}
	if got := ask("romeo@localhost", "<iq type='set' id='p'><pubsub xmlns='"+nsPubsub+"'><publish node='x'><item><x xmlns='x'/></item></publish></pubsub></iq>"); !strings.Contains(got, "forbidden") {
		t.Errorf("a publication to another account's node: %q", got)
	}
	if len(store.published) != 0 {
		t.Errorf("published %+v", store.published)
	}
}
