package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitFor reads c's stanzas until one contains want; it returns them all.
func waitFor(t *testing.T, c *loadClient, want string) string {
	t.Helper()
	var b strings.Builder
	c.nc.SetDeadline(time.Now().Add(15 * time.Second))
	for {
		st, inner, err := c.next()
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %s)", want, err, b.String())
		}
		b.WriteString("<" + st.Name.Local)
		for _, a := range st.Attr {
			b.WriteString(" " + a.Name.Local + "='" + a.Value + "'")
		}
		b.WriteString(">" + inner + "\n")
		if strings.Contains(b.String(), want) {
			return b.String()
		}
	}
}

// dumpRooms prints the rooms and archive read models, every column, in a
// total order, with the sqlite3 CLI.
func dumpRooms(t *testing.T, data string) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT * FROM rooms ORDER BY jid",
		"SELECT * FROM room_occupants ORDER BY room, account",
		"SELECT * FROM room_affiliations ORDER BY room, jid",
		"SELECT account, at, pos, id, with_bare, with_full, offline, groupchat, stanza FROM archive ORDER BY account, pos",
		"SELECT * FROM archive_occupants ORDER BY room, account",
		"SELECT * FROM archive_stays ORDER BY account, room, since",
		"SELECT * FROM archive_clock",
	} {
		out, err := exec.Command("sqlite3", data+"/annals.db", q).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", q, err, out)
		}
		b.WriteString("== " + q + "\n" + string(out))
	}
	return b.String()
}

// Rooms driven live (joins from two clients of one account, messages, a
// nick change, a kick, a ban, a leave) and then rebuilt from the log give
// the same room rosters and archives.
func TestRoomsRebuild(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUsers(t, data, map[string]string{"romeo@localhost": "montague", "juliet@localhost": "capulet", "tybalt@localhost": "capulet"})
	s, cmd := serveOn(t, data)
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	login := func(user, pw, res string) *loadClient {
		c, err := dialLogin(addr, "localhost", user, pw, res)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.close)
		return c
	}
	const hall = "hall@conference.localhost"
	desk, phone := login("romeo", "montague", "desk"), login("romeo", "montague", "phone")
	jul, tyb := login("juliet", "capulet", "balcony"), login("tybalt", "capulet", "street")
	desk.send("<presence to='" + hall + "/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")
	waitFor(t, desk, "code='201'")
	desk.send("<iq type='set' id='cfg' to='" + hall + "'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>")
	waitFor(t, desk, "id='cfg'")
	phone.send("<presence to='" + hall + "/Romeo'/>")
	waitFor(t, phone, "code='110'")
	jul.send("<presence to='" + hall + "/Juliet'/>")
	waitFor(t, jul, "code='110'")
	tyb.send("<presence to='" + hall + "/Tybalt'/>")
	waitFor(t, tyb, "code='110'")
	for i := range 5 {
		jul.send("<message to='" + hall + "' type='groupchat' id='j" + strconv.Itoa(i) + "'><body>hello " + strconv.Itoa(i) + "</body></message>")
		waitFor(t, jul, "id='j"+strconv.Itoa(i)+"'")
	}
	phone.send("<presence to='" + hall + "/Romeo2'/>")
	waitFor(t, desk, "code='303'")
	desk.send("<iq type='set' id='k' to='" + hall + "'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Tybalt' role='none'/></query></iq>")
	waitFor(t, desk, "id='k'")
	desk.send("<iq type='set' id='b' to='" + hall + "'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='tybalt@localhost' affiliation='outcast'/></query></iq>")
	waitFor(t, desk, "id='b'")
	jul.send("<presence to='" + hall + "/Juliet' type='unavailable'/>")
	waitFor(t, jul, "type='unavailable'")
	desk.send("<message to='" + hall + "' type='groupchat' id='r1'><body>after she left</body></message>")
	waitFor(t, desk, "id='r1'")

	// Serve stops: the async rooms read model has caught up by then.
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	live := dumpRooms(t, data)
	for _, want := range []string{"hall@conference.localhost|romeo@localhost|Romeo2", "tybalt@localhost|outcast", "after she left"} {
		if !strings.Contains(live, want) {
			t.Fatalf("live read models lack %q:\n%s", want, live)
		}
	}
	if strings.Contains(live, "|juliet@localhost|Juliet|") {
		t.Fatalf("juliet left but is still an occupant:\n%s", live)
	}
	if out, err := exec.Command(bin, "rebuild", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if rebuilt := dumpRooms(t, data); rebuilt != live {
		t.Fatalf("rebuilt read models differ:\nlive:\n%s\nrebuilt:\n%s", live, rebuilt)
	}
}
