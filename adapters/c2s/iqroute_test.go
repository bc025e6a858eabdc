package c2s

import (
	"context"
	"slices"
	"strings"
	"testing"

	"annals.im/annals/adapters/features/disco"
	"annals.im/annals/adapters/mux"
	"annals.im/annals/domain/roster"
)

// An IQ to another client's full JID is delivered to it from the sender's
// full JID, and its answer comes back the same way (RFC 6121 §8.5.3.1);
// an IQ to a resource that is not connected gets service-unavailable; an
// answer to a resource that has gone is dropped, not answered.
func TestIQBetweenClients(t *testing.T) {
	addr := rawServer(t, 0)
	romeo, juliet := dial(t, addr), dial(t, addr)
	romeo.loginAs("romeo", "orchard")
	juliet.login("balcony")

	romeo.send("<iq type='get' id='v1' to='juliet@localhost/balcony'><query xmlns='jabber:iq:version'/></iq>")
	got := juliet.until("id='v1'")
	if !strings.Contains(got, "from='romeo@localhost/orchard'") || !strings.Contains(got, "jabber:iq:version") {
		t.Fatalf("juliet got %q", got)
	}
	juliet.send("<iq type='result' id='v1' to='romeo@localhost/orchard'><query xmlns='jabber:iq:version'><name>Balcony</name></query></iq>")
	if got := romeo.until("id='v1'"); !strings.Contains(got, "from='juliet@localhost/balcony'") || !strings.Contains(got, "<name>Balcony</name>") {
		t.Fatalf("romeo got %q", got)
	}

	// A forged from is replaced by the sender's full JID.
	romeo.send("<iq type='get' id='v3' from='nurse@localhost/kitchen' to='juliet@localhost/balcony'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := juliet.until("id='v3'"); strings.Contains(got, "nurse") || !strings.Contains(got, "from='romeo@localhost/orchard'") {
		t.Fatalf("a forged from reached juliet: %q", got)
	}
	// A to that is no JID is answered, not routed.
	romeo.send("<iq type='get' id='v4' to='juliet@@localhost/balcony'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := romeo.until("id='v4'"); !strings.Contains(got, "type='error'") {
		t.Fatalf("IQ to a malformed JID: %q", got)
	}
	romeo.send("<iq type='get' id='v2' to='juliet@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := romeo.until("id='v2'"); !strings.Contains(got, "type='error'") || !strings.Contains(got, "service-unavailable") {
		t.Fatalf("IQ to a resource that is not connected: %q", got)
	}
	juliet.send("<iq type='error' id='x' to='romeo@localhost/gone'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	// Nothing comes back for an answer to nowhere: the next IQ's answer is
	// the first thing juliet reads.
	juliet.send("<iq type='get' id='p' ><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := juliet.until("id='p'"); strings.Contains(got, "id='x'") {
		t.Fatalf("an answer to nowhere was answered: %q", got)
	}
}

// The room service registers itself as an item of the server's
// disco#items (XEP-0045 §6.1), and carbons are among the server's
// features (adapters/features/disco answers from these registrations).
func TestServerDisco(t *testing.T) {
	addr, _ := mucServerRooms(t)
	m := servers[addr].cfg.Mux
	if items := m.Items(mux.Server); !slices.Contains(items, mux.Item{JID: "conference.localhost", Name: "Chatrooms"}) {
		t.Errorf("server items: %v", items)
	}
	if f := m.Features(mux.Server); !slices.Contains(f, nsCarbons) {
		t.Errorf("server features: %v", f)
	}
}

// An occupant's exit text reaches the others with its unavailable
// presence (XEP-0045 §7.14).
func TestMUCExitStatus(t *testing.T) {
	_, _, owner, jul := hallWithOwner(t)
	configure(t, owner, "cfg", map[string]string{})
	jul.send(`<presence to='` + hall + `/Juliet'/>`)
	jul.until("code='110'")
	owner.until("/Juliet'")
	jul.send(`<presence to='` + hall + `/Juliet' type='unavailable'><status>good night</status></presence>`)
	got := owner.until("</status>")
	if !strings.Contains(got, "type='unavailable'") || !strings.Contains(got, "<status>good night</status>") {
		t.Fatalf("the exit reached the owner without its text: %q", got)
	}
}

// Stanzas to another server are answered remote-server-not-found, one
// rule for every kind (no s2s yet), except errors and answers, which are
// never answered; a subscription request still reaches the roster.
func TestRouteRemote(t *testing.T) {
	addr := rawServer(t, 0)
	c := dial(t, addr)
	c.login("balcony")
	for _, s := range []string{
		"<iq type='get' id='r1' to='example.net'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<message type='chat' id='r2' to='mercutio@example.net'><body>hi</body></message>",
		"<presence id='r3' to='room@conference.example.net/nick'/>",
	} {
		c.send(s)
		id := s[strings.Index(s, "id='")+4 : strings.Index(s, "id='")+6]
		if got := c.until("id='" + id + "'"); !strings.Contains(got, "type='error'") || !strings.Contains(got, "remote-server-not-found") {
			t.Errorf("%s: %q", s, got)
		}
	}
	c.send("<message type='error' id='e1' to='mercutio@example.net'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
	c.send("<iq type='result' id='e2' to='mercutio@example.net/x'/>")
	c.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := c.until("id='p'"); strings.Contains(got, "id='e1'") || strings.Contains(got, "id='e2'") {
		t.Errorf("an error or an answer was answered: %q", got)
	}
}

// lovers are Romeo and Juliet, each subscribed to the other.
type lovers struct{ noContacts }

func (lovers) Roster(_ context.Context, acct string) (roster.State, error) {
	other := map[string]string{"romeo@localhost": "juliet@localhost", "juliet@localhost": "romeo@localhost"}[acct]
	return roster.State{Items: map[string]roster.Item{other: {Contact: other, Subscription: roster.Both}}}, nil
}

// Presence goes to a contact's available resources only (RFC 6121 §4.2.2,
// §4.4.2): a session that has sent no initial presence gets none, and
// learns the contact's presence by probe when it becomes available.
func TestPresenceToAvailableResources(t *testing.T) {
	addr := serverWith(t, func(cfg *Config) { cfg.Accounts = lovers{} })
	romeo, quiet, seen := dial(t, addr), dial(t, addr), dial(t, addr)
	romeo.loginAs("romeo", "orchard")
	quiet.loginAs("juliet", "balcony")
	seen.loginAs("juliet", "garden")
	seen.send("<presence/>")
	seen.until("from='juliet@localhost/garden'") // its own presence back
	romeo.send("<presence><status>here</status></presence>")
	if got := seen.until("<status>here</status>"); !strings.Contains(got, "from='romeo@localhost/orchard'") {
		t.Fatalf("the available session: %q", got)
	}
	quiet.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if got := quiet.until("id='p'"); strings.Contains(got, "<presence") {
		t.Fatalf("a session without initial presence got presence: %q", got)
	}
	quiet.send("<presence/>")
	if got := quiet.until("<status>here</status>"); !strings.Contains(got, "from='romeo@localhost/orchard'") {
		t.Fatalf("the probe on becoming available: %q", got)
	}
}

// The server answers disco#info on another account's bare JID for it to
// those the account shares its presence with, and service-unavailable to
// anyone else, as for an account that does not exist (RFC 6121 §8.5.1).
func TestIQToContactBareJID(t *testing.T) {
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts = lovers{} }, func(srv *Server) { disco.Register(srv.cfg.Mux, "Annals") })
	romeo := dial(t, addr)
	romeo.loginAs("romeo", "orchard")
	romeo.send("<iq type='get' id='d1' to='juliet@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	got := romeo.until("id='d1'")
	if !strings.Contains(got, "type='result'") || !strings.Contains(got, "from='juliet@localhost'") || !strings.Contains(got, "category='account'") {
		t.Fatalf("disco#info to a contact's bare JID: %q", got)
	}
	romeo.send("<iq type='get' id='d2' to='nurse@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if got := romeo.until("id='d2'"); !strings.Contains(got, "service-unavailable") || !strings.Contains(got, "from='nurse@localhost'") {
		t.Fatalf("disco#info to a stranger's bare JID: %q", got)
	}
}
