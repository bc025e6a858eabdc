package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 10, item 7: per-account quotas. Each test makes the attack against
// the real serve and checks the safe answer, and that another session is
// served meanwhile.

// register sends one in-band registration on c and returns the answer.
func register(t *testing.T, c *loadClient, id, user string) string {
	t.Helper()
	return askRaw(t, c, "<iq type='set' id='"+id+"'><query xmlns='jabber:iq:register'><username>"+user+
		"</username><password>pw-"+user+"</password></query></iq>", id)
}

// One stream registered 200 accounts in 1.4 s. Now an address (loopback
// included) registers three per ten minutes, by default; the rest of a
// burst gets resource-constraint (type wait), on that stream and on new
// ones. Another address still registers, and a logged-in user is served.
func TestHostileRegistrationFlood(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"bob@localhost": "b-pw", "carol@localhost": "c-pw"})
	s, _ := serveOn(t, data, "--registration")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	carol := login(t, addr, "carol", "c-pw", "desk")
	defer carol.close()

	flood := dialFrom(t, addr, "127.0.0.1")
	made, refused := 0, 0
	start := time.Now()
	for i := range 30 {
		r := register(t, flood, "r"+strconv.Itoa(i), "flood"+strconv.Itoa(i))
		switch {
		case strings.Contains(startTagOf(r), "'result'"):
			made++
		case strings.Contains(r, "resource-constraint") && strings.Contains(r, "type='wait'"):
			refused++
		default:
			t.Fatalf("registration %d: %s", i, r)
		}
	}
	t.Logf("30 registrations on one stream: %d made, %d refused in %v", made, refused, time.Since(start))
	if made != 3 || refused != 27 {
		t.Fatalf("%d made, %d refused; want 3 and 27", made, refused)
	}
	// A new stream from the same address is refused too.
	again := dialFrom(t, addr, "127.0.0.1")
	if r := register(t, again, "x", "another"); !strings.Contains(r, "resource-constraint") {
		t.Fatalf("a new stream from the flooding address: %s", r)
	}
	if _, err := dialLogin(addr, "localhost", "flood3", "pw-flood3", "x"); err == nil {
		t.Fatal("a refused registration made an account")
	}
	// Another address registers, and the account works.
	other := dialFrom(t, addr, "127.0.0.2")
	if r := register(t, other, "y", "dave"); !strings.Contains(startTagOf(r), "'result'") {
		t.Fatalf("another address: %s", r)
	}
	login(t, addr, "dave", "pw-dave", "desk").close()
	login(t, addr, "flood0", "pw-flood0", "desk").close()
	chat(t, bob, carol, "still served after the registration flood")
}

// The benchmarks register hundreds of accounts from 127.0.0.1:
// --registrations-per-address 0 lifts the limit (e2e/bench_test.go passes it).
func TestRegistrationLimitLifted(t *testing.T) {
	s, _ := serveOn(t, t.TempDir(), "--registration", "--registrations-per-address", "0")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	if err := makeAccountsN(addr, 20); err != nil {
		t.Fatal(err)
	}
	login(t, addr, "u19", "pw19", "desk").close()
}

// bindAs binds resource on a stream authenticated as user and returns the
// answer to the bind.
func bindAs(t *testing.T, addr, user, pw, resource string) (*loadClient, string) {
	t.Helper()
	c := loginNoBind(t, addr, user, pw)
	return c, askRaw(t, c, "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>", "bind")
}

// One account bound 300 resources. Now it binds 100 at most, by default,
// a detached resumable session included; the next bind gets
// resource-constraint (RFC 6120 §7.6.2.1) and the stream stays open, so
// the client may bind once a resource is free. Another account is served.
func TestHostileResources(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"mallory@localhost": "m-pw", "bob@localhost": "b-pw", "carol@localhost": "c-pw"})
	s, _ := serveOn(t, data)
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	carol := login(t, addr, "carol", "c-pw", "desk")
	defer carol.close()

	// The first session is resumable, and its connection breaks.
	detached := login(t, addr, "mallory", "m-pw", "r0")
	detached.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	awaitElem(t, detached, "enabled", "")
	detached.nc.Close()
	var held []*loadClient
	defer func() {
		for _, c := range held {
			c.close()
		}
	}()
	start := time.Now()
	for i := 1; i < 100; i++ {
		c, r := bindAs(t, addr, "mallory", "m-pw", "r"+strconv.Itoa(i))
		held = append(held, c)
		if !strings.Contains(startTagOf(r), "'result'") {
			t.Fatalf("bind %d: %s", i, r)
		}
	}
	t.Logf("100 resources bound in %v", time.Since(start))
	extra, r := bindAs(t, addr, "mallory", "m-pw", "r100")
	defer extra.close()
	if !strings.Contains(r, "resource-constraint") || !strings.Contains(r, "type='wait'") {
		t.Fatalf("the 101st bind: %s", r)
	}
	chat(t, bob, carol, "still served beside 100 resources")
	// A resource freed, the refused stream binds.
	held[0].close()
	held = held[1:]
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = askRaw(t, extra, "<iq type='set' id='again'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r100</resource></bind></iq>", "again")
		if strings.Contains(startTagOf(r), "'result'") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bind after a resource was freed: %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A roster had no size limit, and anyone could add items to anyone's
// roster by sending subscription requests. Now a roster holds
// --max-roster-items contacts (20 here; 1,000 by default): a roster set or
// a subscribe that would add one more gets resource-constraint; a
// stranger's request to a full roster is dropped; existing contacts still
// work, and removing one makes room.
func TestHostileRoster(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"alice@localhost": "a-pw", "bob@localhost": "b-pw", "mallory@localhost": "m-pw"})
	s, _ := serveOn(t, data, "--max-roster-items", "20")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	alice := login(t, addr, "alice", "a-pw", "desk")
	defer alice.close()
	alice.send("<presence/>")
	item := func(id, contact string) string {
		return "<iq type='set' id='" + id + "'><query xmlns='jabber:iq:roster'><item jid='" + contact + "'/></query></iq>"
	}
	ask(t, alice, item("bob", "bob@localhost"))
	for i := 1; i < 20; i++ {
		ask(t, alice, item("c"+strconv.Itoa(i), fmt.Sprintf("c%d@localhost", i)))
	}
	if r := askRaw(t, alice, item("full", "c20@localhost"), "full"); !strings.Contains(r, "resource-constraint") {
		t.Fatalf("the 21st roster item: %s", r)
	}
	// A subscribe to a new contact would add an item: refused too.
	alice.send("<presence to='mallory@localhost' type='subscribe' id='sub'/>")
	if r := awaitElem(t, alice, "presence", "id='sub'"); !strings.Contains(r, "resource-constraint") {
		t.Fatalf("subscribe with a full roster: %s", r)
	}
	// Mallory fills nothing: his request is dropped.
	mallory := login(t, addr, "mallory", "m-pw", "desk")
	defer mallory.close()
	mallory.send("<presence to='alice@localhost' type='subscribe'/>")
	ping(t, mallory)
	// Bob, a contact already there, asks: Alice gets his request, not Mallory's.
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	bob.send("<presence to='alice@localhost' type='subscribe'/>")
	if got := awaitElem(t, alice, "presence", "type='subscribe'"); !strings.Contains(got, "bob@localhost") {
		t.Fatalf("the first subscription request alice saw: %s", got)
	}
	r := ask(t, alice, "<iq type='get' id='list'><query xmlns='jabber:iq:roster'/></iq>")
	if n := strings.Count(r, "<item "); n != 20 || strings.Contains(r, "mallory") {
		t.Fatalf("alice's roster holds %d items: %s", n, r)
	}
	// Removing a contact makes room.
	ask(t, alice, "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='c1@localhost' subscription='remove'/></query></iq>")
	ask(t, alice, item("room", "c20@localhost"))
	chat(t, bob, alice, "still served with a full roster")
}

// PEP had no limits: any number of nodes, items and bytes per account,
// all folded into the account's state in memory. Now, by default, an item
// over 64 KiB gets not-acceptable with payload-too-big, the 101st node
// resource-constraint with max-nodes-exceeded, max_items over 1,000
// bad-request, and a publication that would take the account past 1 MiB
// resource-constraint. Another account is served meanwhile.
func TestHostilePEP(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"mallory@localhost": "m-pw", "bob@localhost": "b-pw", "carol@localhost": "c-pw"})
	s, _ := serveOn(t, data)
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	bob := login(t, addr, "bob", "b-pw", "desk")
	defer bob.close()
	carol := login(t, addr, "carol", "c-pw", "desk")
	defer carol.close()
	m := login(t, addr, "mallory", "m-pw", "desk")
	defer m.close()
	n := 0
	publish := func(node, payload, options string) string {
		n++
		id := "p" + strconv.Itoa(n)
		return askRaw(t, m, "<iq type='set' id='"+id+"'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='"+node+
			"'><item id='"+id+"'>"+payload+"</item></publish>"+options+"</pubsub></iq>", id)
	}
	maxItems := func(v string) string {
		return "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
			"<field var='pubsub#max_items'><value>" + v + "</value></field></x></publish-options>"
	}
	blob := func(size int) string {
		return "<blob xmlns='urn:example:blob'>" + strings.Repeat("x", size) + "</blob>"
	}

	if r := publish("big", blob(100<<10), ""); !strings.Contains(r, "not-acceptable") || !strings.Contains(r, "payload-too-big") {
		t.Fatalf("a 100 KiB item: %s", startTagOf(r)+" "+r[len(r)-min(len(r), 300):])
	}
	if r := publish("many", "<x xmlns='urn:example'/>", maxItems("1001")); !strings.Contains(r, "bad-request") {
		t.Fatalf("max_items 1001: %s", r)
	}
	// Bytes: items of 60,000 bytes in one node until the account passes 1 MiB.
	stored := 0
	for i := 0; ; i++ {
		r := publish("bytes", blob(60000), maxItems("max"))
		if strings.Contains(startTagOf(r), "'result'") {
			stored++
			continue
		}
		if !strings.Contains(r, "resource-constraint") {
			t.Fatalf("item %d of 60,000 bytes: %s", i, startTagOf(r))
		}
		break
	}
	if stored != 17 { // 17 × ~60 KB < 1 MiB < 18 × ~60 KB
		t.Fatalf("%d items of 60,000 bytes stored, want 17", stored)
	}
	// Nodes: 100 in all ("bytes" is one), the 101st refused.
	for i := 1; i < 100; i++ {
		if r := publish("node"+strconv.Itoa(i), "<x xmlns='urn:example'/>", ""); !strings.Contains(startTagOf(r), "'result'") {
			t.Fatalf("node %d: %s", i, r)
		}
	}
	r := publish("node100", "<x xmlns='urn:example'/>", "")
	if !strings.Contains(r, "resource-constraint") || !strings.Contains(r, "max-nodes-exceeded") {
		t.Fatalf("the 101st node: %s", r)
	}
	// An existing node still takes items; bookmarks of another account work.
	if r := publish("node1", "<y xmlns='urn:example'/>", ""); !strings.Contains(startTagOf(r), "'result'") {
		t.Fatalf("publishing to an existing node: %s", r)
	}
	ask(t, bob, "<iq type='set' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'>"+
		"<item id='hall@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish></pubsub></iq>")
	chat(t, bob, carol, "still served beside a full PEP")
}
