package e2e

import (
	"encoding/xml"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 10, item 2: a deleted account's name is no takeover. Alice has a
// roster, a room she owns, a bookmark, an archive, a live session and a
// detached resumable one; the operator deletes her while serve runs, and
// Mallory registers "alice" in-band. Every old session ended, Mallory
// inherits nothing, Bob's roster no longer shares presence with the name,
// and Bob is served throughout.
func TestHostileAccountTakeover(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "a-pw", "bob@localhost": "b-pw"})
	s, _ := serveOn(t, data, "--registration")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	const hall = "hall@conference.localhost"

	alice := login(t, addr, "alice", "a-pw", "desk")
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	// Mutual subscription.
	alice.send("<presence to='bob@localhost' type='subscribe'/>")
	awaitElem(t, bob, "presence", "type='subscribe'")
	bob.send("<presence to='alice@localhost' type='subscribed'/><presence to='alice@localhost' type='subscribe'/>")
	awaitElem(t, alice, "presence", "type='subscribe'")
	alice.send("<presence to='bob@localhost' type='subscribed'/><presence/>")
	awaitElem(t, bob, "presence", "type='subscribed'")
	bob.send("<presence/>")
	if items := ask(t, bob, "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"); !strings.Contains(items, "subscription='both'") &&
		!strings.Contains(items, `subscription="both"`) {
		t.Fatalf("bob's roster before: %s", items)
	}
	// A room Alice owns, a bookmark to it, a message in her archive.
	alice.send("<presence to='" + hall + "/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	awaitElem(t, alice, "presence", "from='"+hall+"/alice'")
	ask(t, alice, "<iq type='set' id='cfg' to='"+hall+"'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	ask(t, alice, "<iq type='set' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'>"+
		"<item id='"+hall+"'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>alice</nick></conference></item></publish></pubsub></iq>")
	bob.send("<message to='alice@localhost' type='chat' id='m1'><body>for alice only</body></message>")
	awaitElem(t, alice, "message", "for alice only")

	// A second session, resumable, whose connection breaks.
	detached := login(t, addr, "alice", "a-pw", "phone")
	detached.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	enabled := awaitElem(t, detached, "enabled", "")
	prev := attrOf(enabled, "id")
	if prev == "" {
		t.Fatalf("no resumption id in %s", enabled)
	}
	detached.nc.Close()

	if out, err := exec.Command(bin, "user", "del", "alice@localhost", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("user del: %v\n%s", err, out)
	}
	if cond := streamErrorOf(t, alice); cond != "not-authorized" {
		t.Errorf("alice's live session after deletion: stream ended with %q, want not-authorized", cond)
	}

	if err := registerAccount(addr, "localhost", "alice", "mallory-pw"); err != nil {
		t.Fatalf("registering the free name: %v", err)
	}
	m := login(t, addr, "alice", "mallory-pw", "desk")
	defer m.close()
	if r := ask(t, m, "<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>"); strings.Contains(r, "bob@localhost") {
		t.Errorf("the new alice inherited the roster: %s", r)
	}
	if r := ask(t, m, "<iq type='get' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>"); strings.Contains(r, hall) {
		t.Errorf("the new alice inherited the bookmarks: %s", r)
	}
	m.send("<iq type='set' id='mam'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>")
	if got := collectUntil(t, m, "mam"); strings.Contains(got, "for alice only") {
		t.Errorf("the new alice reads the old archive: %s", got)
	}
	if r := askRaw(t, m, "<iq type='get' id='own' to='"+hall+"'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>", "own"); !strings.Contains(r, "type='error'") && !strings.Contains(r, `type="error"`) {
		t.Errorf("the new alice owns the old alice's room: %s", r)
	}
	// The detached session cannot be resumed by the name's new owner.
	r := loginNoBind(t, addr, "alice", "mallory-pw")
	r.send("<resume xmlns='urn:xmpp:sm:3' previd='" + prev + "' h='0'/>")
	if st := awaitElem(t, r, "", ""); !strings.HasPrefix(st, "<failed") {
		t.Errorf("resuming the deleted account's session: %s", st)
	}
	r.close()

	// Bob shares no presence with the name any more, and is still served.
	if items := ask(t, bob, "<iq type='get' id='r3'><query xmlns='jabber:iq:roster'/></iq>"); strings.Contains(items, "subscription='both'") ||
		strings.Contains(items, "subscription='to'") || strings.Contains(items, "subscription='from'") {
		t.Errorf("bob's roster still shares presence with alice: %s", items)
	}
	ask(t, bob, "<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
}

// TestHostilePasswordChange: changing the password ends the account's
// other sessions, in-band (the changing session goes on) and from the CLI
// (all of them).
func TestHostilePasswordChange(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "a-pw", "bob@localhost": "b-pw"})
	s, _ := serveOn(t, data, "--registration")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()

	stolen := login(t, addr, "alice", "a-pw", "stolen")
	mine := login(t, addr, "alice", "a-pw", "mine")
	ask(t, mine, "<iq type='set' id='pw'><query xmlns='jabber:iq:register'><username>alice</username><password>new-pw-1</password></query></iq>")
	if cond := streamErrorOf(t, stolen); cond != "reset" {
		t.Errorf("the other session after an in-band password change: %q, want reset", cond)
	}
	ask(t, mine, "<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")

	if out, err := exec.Command(bin, "user", "passwd", "alice@localhost", "--password", "new-pw-2", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if cond := streamErrorOf(t, mine); cond != "reset" {
		t.Errorf("after the operator's password change: %q, want reset", cond)
	}
	login(t, addr, "alice", "new-pw-2", "again").close()
	ask(t, bob, "<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
}

func login(t *testing.T, addr, user, pw, resource string) *loadClient {
	t.Helper()
	c, err := dialLogin(addr, "localhost", user, pw, resource)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// loginNoBind authenticates and opens the stream after SASL, without
// binding: where a client resumes a session.
func loginNoBind(t *testing.T, addr, user, pw string) *loadClient {
	t.Helper()
	c, err := dialAuth(addr, "localhost", user, pw)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// awaitElem reads top-level elements until one named name (any, for "")
// whose serialization contains has; it returns that serialization.
func awaitElem(t *testing.T, c *loadClient, name, has string) string {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		st, inner, err := c.next()
		if err != nil {
			t.Fatalf("waiting for %s %q: %v", name, has, err)
		}
		s := startString(st) + inner
		if (name == "" || st.Name.Local == name) && strings.Contains(s, has) {
			return s
		}
	}
}

// ask sends an IQ and returns its result's serialization; an error
// answer fails the test.
func ask(t *testing.T, c *loadClient, iq string) string {
	t.Helper()
	id := attrOf(iq, "id")
	r := askRaw(t, c, iq, id)
	if strings.Contains(startTagOf(r), "'error'") {
		t.Fatalf("%s: %s", iq, r)
	}
	return r
}

func askRaw(t *testing.T, c *loadClient, iq, id string) string {
	t.Helper()
	if err := c.send(iq); err != nil {
		t.Fatal(err)
	}
	return awaitElem(t, c, "iq", "id='"+id+"'")
}

// collectUntil gathers everything read until the IQ with id arrives.
func collectUntil(t *testing.T, c *loadClient, id string) string {
	t.Helper()
	var b strings.Builder
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		st, inner, err := c.next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", id, err)
		}
		s := startString(st) + inner
		b.WriteString(s)
		if st.Name.Local == "iq" && strings.Contains(startString(st), "id='"+id+"'") {
			return b.String()
		}
	}
}

// startString renders a start tag with single-quoted attributes.
func startString(st xml.StartElement) string {
	var b strings.Builder
	b.WriteString("<" + st.Name.Local)
	for _, a := range st.Attr {
		fmt.Fprintf(&b, " %s='%s'", a.Name.Local, a.Value)
	}
	return b.String() + ">"
}

func startTagOf(s string) string {
	if i := strings.IndexByte(s, '>'); i >= 0 {
		return s[:i]
	}
	return s
}

// attrOf reads attribute name from the first tag of s.
func attrOf(s, name string) string {
	tag := startTagOf(s)
	for _, q := range []string{"'", `"`} {
		if i := strings.Index(tag, " "+name+"="+q); i >= 0 {
			rest := tag[i+len(name)+3:]
			if j := strings.Index(rest, q); j >= 0 {
				return rest[:j]
			}
		}
	}
	return ""
}
