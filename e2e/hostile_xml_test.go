package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostileXML (issue 10, item 1): stanzas that are not
// namespace-well-formed are refused with a stream error and never reach
// another user, an archive or a room's history; a well-formed stanza with
// prefixes reaches slixmpp (expat) with its namespaces intact. The victim
// stays connected throughout.
func TestHostileXML(t *testing.T) {
	s := startServer(t, map[string]string{"mallory@localhost": "m-pw", "bob@localhost": "b-pw"})
	rs := runDriver(t, "/usr/bin/python3", "clients/slix_hostile.py", strconv.Itoa(s.port), "xml",
		"mallory@localhost", "m-pw", "bob@localhost", "b-pw", "hall@conference.localhost")

	restricted := map[string]bool{"comment": true, "processing-instruction": true, "doctype": true}
	attacks := all(rs, "attack")
	if len(attacks) != 18 {
		t.Fatalf("%d attacks ran, want 18: %v", len(attacks), rs)
	}
	for _, a := range attacks {
		name := str(a["name"])
		base := name
		if len(base) > 5 && base[:5] == "room-" {
			base = base[5:]
		}
		want := "not-well-formed"
		if restricted[base] {
			want = "restricted-xml"
		}
		if a["disconnected"] != true || str(a["condition"]) != want {
			t.Errorf("attack %s: disconnected %v with %q, want a %s stream error", name, a["disconnected"], a["condition"], want)
		}
	}

	v := find(t, rs, "victim")
	if v["connected"] != true {
		t.Fatalf("the victim's client was disconnected: %v", v)
	}
	bodies := strs(v["bodies"])
	if !slices.Equal(bodies, []string{"tricky & fine", "end"}) && !slices.Equal(bodies, []string{"tricky & fine", "end", "room-after"}) {
		t.Errorf("victim received %q, want only the well-formed messages", bodies)
	}
	tags := strs(v["tricky_tags"])
	for _, want := range []string{"{urn:xmpp:receipts}request", "{urn:example:e}data", "{jabber:client}body"} {
		if !slices.Contains(tags, want) {
			t.Errorf("the prefixed message reached the victim as %v: %s missing", tags, want)
		}
	}
	if a := find(t, rs, "victim-archive"); a["ok"] != true || !slices.Equal(strs(a["bodies"]), []string{"tricky & fine", "end"}) {
		t.Errorf("victim's archive: %v", a)
	}
	h := find(t, rs, "room-history")
	if h["connected"] != true || !slices.Equal(strs(h["bodies"]), []string{"room-before", "room-after"}) {
		t.Errorf("room history replayed to the victim: %v", h)
	}
	if a := find(t, rs, "attacker-after"); a["connected"] != true {
		t.Errorf("the attacker's well-formed session was cut off: %v", a)
	}
}

// TestHostileXMLLimits: nesting and size past the configured limits end
// the sender's stream with policy-violation; another session goes on.
func TestHostileXMLLimits(t *testing.T) {
	data := t.TempDir()
	addUsers(t, data, map[string]string{"mallory@localhost": "m-pw", "bob@localhost": "b-pw"})
	s, _ := serveOn(t, data, "--max-stanza-depth", "10", "--max-stanza", "8192")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	bob, err := dialLogin(addr, "localhost", "bob", "b-pw", "desk")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.close()
	for name, stanza := range map[string]string{
		// The stream element is one level: a message with 9 levels inside is 11.
		"too deep": "<message to='bob@localhost'>" + strings.Repeat("<x xmlns='urn:x'>", 9) + strings.Repeat("</x>", 9) + "</message>",
		"too big":  "<message to='bob@localhost'><body>" + strings.Repeat("a", 9000) + "</body></message>",
	} {
		m, err := dialLogin(addr, "localhost", "mallory", "m-pw", "atk")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.send(stanza); err != nil {
			t.Fatal(err)
		}
		if cond := streamErrorOf(t, m); cond != "policy-violation" {
			t.Errorf("%s: stream ended with %q, want policy-violation", name, cond)
		}
		m.close()
	}
	// Just inside the limits passes, and bob is still served.
	m, err := dialLogin(addr, "localhost", "mallory", "m-pw", "fine")
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	if err := m.send("<message to='bob@localhost/desk' id='ok'>" + strings.Repeat("<x xmlns='urn:x'>", 8) + strings.Repeat("</x>", 8) + "<body>ok</body></message>"); err != nil {
		t.Fatal(err)
	}
	for {
		st, inner, err := bob.next()
		if err != nil {
			t.Fatalf("bob: %v", err)
		}
		if st.Name.Local == "message" && strings.Contains(inner, "<body>ok</body>") {
			return
		}
	}
}

// streamErrorOf reads until the stream ends and returns the condition of
// the stream error that ended it ("" for none).
func streamErrorOf(t *testing.T, c *loadClient) string {
	t.Helper()
	return readStreamError(c, 10*time.Second)
}
