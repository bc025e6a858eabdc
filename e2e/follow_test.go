package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
	"annals.im/annals/eventstore/owner"
)

// Sessions see what the log says, whichever process wrote it: a room
// message appended by another process (this test, opening the same store
// as a second node would) reaches both occupants' sessions, and an account
// deleted with the CLI loses its session and leaves the room in everyone's
// eyes. Before delivery from the log, neither reached anyone.
func TestDeliveryFromTheLog(t *testing.T) {
	s := startServer(t, map[string]string{"alice@localhost": "a-pw", "bob@localhost": "b-pw"})
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	const hall = "hall@conference.localhost"
	alice, bob := login(t, addr, "alice", "a-pw", "desk"), login(t, addr, "bob", "b-pw", "phone")
	// Contacts both ways.
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	awaitElem(t, bob, "presence", "type='subscribe'")
	bob.send("<presence to='alice@localhost' type='subscribed'/><presence to='alice@localhost' type='subscribe'/>")
	awaitElem(t, alice, "presence", "type='subscribe'")
	alice.send("<presence to='bob@localhost' type='subscribed'/>")
	awaitElem(t, alice, "iq", "subscription='both'") // the roster push of the subscription
	alice.send("<presence to='" + hall + "/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	awaitElem(t, alice, "message", "<subject")
	ask(t, alice, "<iq type='set' id='cfg' to='"+hall+"'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	bob.send("<presence to='" + hall + "/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	awaitElem(t, bob, "message", "<subject")
	awaitElem(t, alice, "presence", "from='"+hall+"/bob'")

	// A message of Alice's, whose event names the stanza as its cause.
	alice.send("<message to='" + hall + "' type='groupchat' id='g1'><body>from this node</body></message>")
	awaitElem(t, bob, "message", "from this node")

	// Another process appends a message of Bob's to the room's stream.
	ctx := context.Background()
	store := openKeyed(t, s.data)
	evs, err := store.ReadStream(ctx, room.Stream(hall), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Type != room.TypeMessagePosted || !strings.HasPrefix(last.Cause, "c2s:") || !strings.HasSuffix(last.Cause, "/g1") {
		t.Errorf("the message's event: %s caused by %q, want c2s:<session>/g1", last.Type, last.Cause)
	}
	rooms := owner.New(store, room.Evolve)
	ids := event.NewIDs()
	_, _, err = rooms.Do(ctx, room.Stream(hall), func(st room.State) ([]event.Envelope, error) {
		st.JID = hall
		out, err := room.Decide(st, room.Post{Account: "bob@localhost", ID: ids.New(time.Now()).String(),
			Stanza: "<message xmlns='jabber:client' type='groupchat' from='" + hall + "/bob' id='n2'><body>from another node</body></message>"},
			ids, time.Now(), "test")
		return out.Events, err
	})
	store.Close()
	if err != nil {
		t.Fatalf("appending from a second process: %v", err)
	}
	for _, c := range []*loadClient{alice, bob} {
		got := awaitElem(t, c, "message", "from another node")
		if !strings.Contains(got, "urn:xmpp:sid:0") {
			t.Errorf("a message from the log without its stanza-id: %s", got)
		}
	}

	// The CLI deletes Bob while serve runs: his session ends, Alice sees
	// him leave the room, and her roster no longer shares presence with
	// him (the deletion's unsubscriptions, pushed from the log).
	if out, err := exec.Command(bin, "user", "del", "bob@localhost", "--data", s.data).CombinedOutput(); err != nil {
		t.Fatalf("user del: %v\n%s", err, out)
	}
	if got := readStreamError(bob, 10*time.Second); !strings.Contains(got, "not-authorized") {
		t.Errorf("the deleted account's session: %q", got)
	}
	got := awaitElem(t, alice, "presence", "from='"+hall+"/bob'")
	if !strings.Contains(got, "type='unavailable'") {
		t.Errorf("the deleted account's exit: %s", got)
	}
	if got := awaitElem(t, alice, "iq", "jid='bob@localhost'"); !strings.Contains(got, "subscription='none'") {
		t.Errorf("alice's roster push after bob's deletion: %s", got)
	}
}
