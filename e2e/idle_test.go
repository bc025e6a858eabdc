package e2e

import (
	"strconv"
	"testing"
	"time"
)

// A one-shot client (--muc-idle-leave, issue 14 item 10): romeo's
// client joins a room and goes; with no client of his attached for the
// limit, his account leaves the room, and juliet, who stayed, sees it go.
// Juliet's own account, attached all along, stays.
func TestMUCIdleLeave(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"juliet@localhost": "pw", "romeo@localhost": "pw"})
	s, _ := serveOn(t, data, "--muc-idle-leave", "2s")
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	p := startPuppets(t)
	room := "hall@conference.localhost"
	p.login("juliet", addr, "juliet@localhost/balcony", "pw")
	p.login("romeo", addr, "romeo@localhost/script", "pw")
	self := func(name, nick string) func(result) bool {
		return func(r result) bool {
			return is("event", "presence", "name", name, "from", room+"/"+nick, "type", "available")(r) && hasCode(r, 110)
		}
	}
	p.do(map[string]any{"op": "join", "name": "juliet", "room": room, "nick": "Juliet"}, false)
	p.waitFor("juliet in", 10*time.Second, self("juliet", "Juliet"))
	p.do(map[string]any{"op": "configure", "name": "juliet", "room": room}, false)
	p.do(map[string]any{"op": "join", "name": "romeo", "room": room, "nick": "Romeo"}, false)
	p.waitFor("romeo in", 10*time.Second, self("romeo", "Romeo"))
	p.do(map[string]any{"op": "say", "name": "romeo", "to": room, "body": "the build is green"}, false)
	p.do(map[string]any{"op": "logout", "name": "romeo"}, false)
	mark := p.mark()
	p.waitSince(mark, "romeo's account shown xa", 10*time.Second, is("event", "presence", "name", "juliet", "from", room+"/Romeo", "show", "xa"))
	gone := p.waitSince(mark, "romeo's account leaving", 20*time.Second, is("event", "presence", "name", "juliet", "from", room+"/Romeo", "type", "unavailable"))
	t.Logf("romeo's account left: %v", gone)
	time.Sleep(3 * time.Second)
	if left := p.allSince(mark, is("event", "presence", "name", "juliet", "from", room+"/Juliet", "type", "unavailable")); len(left) != 0 {
		t.Errorf("juliet, attached all along, left: %v", left)
	}
}
