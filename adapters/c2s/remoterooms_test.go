package c2s

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// sentRemote records what a Server sent other servers.
type sentRemote struct {
	mu   sync.Mutex
	sent []string
}

func (r *sentRemote) Send(_, _ jid.JID, wire string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, wire)
}

func (r *sentRemote) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// An account is in at most maxRemoteRooms rooms elsewhere: the join past
// it is refused with resource-constraint and never leaves the server.
func TestRemoteRoomsBounded(t *testing.T) {
	remote := &sentRemote{}
	addr := serverWith(t, func(cfg *Config) { cfg.Remote = remote })
	c := dial(t, addr)
	c.login("balcony")
	for i := range maxRemoteRooms {
		c.send(fmt.Sprintf("<presence to='r%d@rooms.example.net/Juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>", i))
	}
	c.send("<presence id='over' to='one-more@rooms.example.net/Juliet'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	if got := c.until("id='over'"); !strings.Contains(got, "resource-constraint") {
		t.Fatalf("the join past the bound: %q", got)
	}
	if n := remote.count(); n != maxRemoteRooms {
		t.Fatalf("%d joins sent, want %d", n, maxRemoteRooms)
	}
}

// A room elsewhere keeps at most maxRemoteOccupants occupants' presences
// for sessions that attach later; one that changes is kept still.
func TestRemoteRoomOccupantsBounded(t *testing.T) {
	rr := &remoteRoom{nick: "Juliet", occupants: map[string]string{}}
	var s Server
	for i := range maxRemoteOccupants + 10 {
		from := jid.MustParse(fmt.Sprintf("hall@rooms.example.net/n%d", i))
		e, err := stanza.Parse([]byte("<presence from='"+from.String()+"'/>"), 8)
		if err != nil {
			t.Fatal(err)
		}
		s.remoteRoomPresenceIn(rr, "juliet@localhost", "hall@rooms.example.net", from, e, "<presence/>")
	}
	if len(rr.occupants) != maxRemoteOccupants {
		t.Fatalf("%d occupants kept, want %d", len(rr.occupants), maxRemoteOccupants)
	}
}

func TestFromDomain(t *testing.T) {
	for in, want := range map[string]string{
		"<message xmlns='jabber:client' from='hall@conference.capulet.test' to='romeo@montague.test'>": "conference.capulet.test",
		"<presence from='juliet@capulet.test/balcony' to='x'/>":                                        "capulet.test",
		"<iq type='result' from='capulet.test' id='1'/>":                                               "capulet.test",
		"<iq type='result' id='1' to='a@b'/>":                                                          "",
		"<message to='a@b'><x from='evil.test'/></message>":                                            "",
	} {
		if got := fromDomain(in); got != want {
			t.Errorf("fromDomain(%s) = %q, want %q", in, got, want)
		}
	}
}
