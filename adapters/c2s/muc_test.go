package c2s

import (
	"strings"
	"testing"
	"time"

	"annals.im/annals/domain/room"
)

func mucServer(t *testing.T) string {
	addr, _ := mucServerRooms(t)
	return addr
}

const hall = "hall@conference.localhost"

// The account occupies the room: a second client of it attaches without a
// second occupant; both get every message; one explicit exit takes the
// account out and tells both; a client that only disconnects detaches.
func TestMUCAccountOccupies(t *testing.T) {
	addr := mucServer(t)
	desk, phone, bal := dial(t, addr), dial(t, addr), dial(t, addr)
	desk.loginAs("romeo", "desk")
	phone.loginAs("romeo", "phone")
	bal.login("balcony")

	desk.send(`<presence to='` + hall + `/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	got := desk.until("</message>") // self-presence then the (empty) subject
	if !strings.Contains(got, "code='201'") || !strings.Contains(got, "code='110'") {
		t.Fatalf("creating join: %q", got)
	}
	// Locked until configured: Juliet cannot enter yet.
	bal.send(`<presence to='` + hall + `/Juliet'/>`)
	if got := bal.until("</presence>"); !strings.Contains(got, "item-not-found") {
		t.Fatalf("join of a locked room: %q", got)
	}
	desk.send(`<iq type='set' id='cfg' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	desk.until("id='cfg'")
	bal.send(`<presence to='` + hall + `/Juliet'/>`)
	bal.until("code='110'")
	desk.until(hall + "/Juliet")

	phone.send(`<presence to='` + hall + `/Romeo'/>`)
	got = phone.until("</message>")
	if !strings.Contains(got, hall+"/Juliet") || !strings.Contains(got, "code='110'") {
		t.Fatalf("second session's join: %q", got)
	}
	// Juliet saw no second Romeo: her next stanza is the message echo.
	bal.send(`<message to='` + hall + `' type='groupchat' id='g1'><body>hello</body></message>`)
	if got := bal.until("<body>hello</body>"); strings.Contains(got, "<presence") {
		t.Fatalf("juliet saw romeo's second client join: %q", got)
	}
	for _, c := range []*rawClient{desk, phone} {
		got := c.until("<body>hello</body>")
		if !strings.Contains(got, "by='"+hall+"'") || !strings.Contains(got, "by='romeo@localhost'") {
			t.Fatalf("groupchat copy without both stanza-ids: %q", got)
		}
	}
	// A nick change from one client reaches the other.
	phone.send(`<presence to='` + hall + `/Romeo2'/>`)
	if got := desk.until("code='303'"); !strings.Contains(got, "nick='Romeo2'") {
		t.Fatalf("nick change: %q", got)
	}
	bal.until("code='303'")
	// A session that disconnects only detaches: Juliet sees no exit.
	phone.nc.Close()
	bal.send(`<message to='` + hall + `' type='groupchat' id='g2'><body>still there?</body></message>`)
	if got := bal.until("still there?"); strings.Contains(got, "type='unavailable'") {
		t.Fatalf("a disconnect looked like an exit: %q", got)
	}
	desk.until("still there?")
	// An explicit exit: the account leaves, once.
	desk.send(`<presence to='` + hall + `/Romeo2' type='unavailable'/>`)
	desk.until("type='unavailable'")
	if got := bal.until("type='unavailable'"); strings.Count(got, "type='unavailable'") != 1 {
		t.Fatalf("exit seen as %q", got)
	}
	// Rooms on other servers are out of reach, and say so.
	desk.send(`<presence to='lounge@conference.example.org/Romeo' id='remote'/>`)
	if got := desk.until("id='remote'"); !strings.Contains(got, "remote-server-not-found") {
		t.Fatalf("join of a remote room: %q", got)
	}
	// Messages from a non-occupant are refused.
	desk.send(`<message to='` + hall + `' type='groupchat' id='g3'><body>let me in</body></message>`)
	if got := desk.until("id='g3'"); !strings.Contains(got, "not-acceptable") {
		t.Fatalf("message from a non-occupant: %q", got)
	}
}

// Kicks and bans reach every client of the account; a banned account
// cannot come back; a non-moderator cannot kick.
func TestMUCKickAndBan(t *testing.T) {
	addr := mucServer(t)
	owner, a, b := dial(t, addr), dial(t, addr), dial(t, addr)
	owner.loginAs("romeo", "o")
	a.login("a")
	b.login("b")
	owner.send(`<presence to='` + hall + `/Romeo'/>`)
	owner.until("code='201'")
	owner.send(`<iq type='set' id='cfg' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	owner.until("id='cfg'")
	a.send(`<presence to='` + hall + `/Juliet'/>`)
	a.until("code='110'")
	b.send(`<presence to='` + hall + `/Juliet'/>`)
	b.until("code='110'")

	a.send(`<iq type='set' id='k0' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Romeo' role='none'/></query></iq>`)
	if got := a.until("id='k0'"); !strings.Contains(got, "not-allowed") && !strings.Contains(got, "forbidden") {
		t.Fatalf("a participant kicked the owner: %q", got)
	}
	owner.send(`<iq type='set' id='k1' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Juliet' role='none'><reason>out</reason></item></query></iq>`)
	owner.until("id='k1'")
	for _, c := range []*rawClient{a, b} {
		if got := c.until("code='307'"); !strings.Contains(got, "code='110'") {
			t.Fatalf("kick without self code: %q", got)
		}
	}
	a.send(`<presence to='` + hall + `/Juliet'/>`)
	a.until("code='110'")
	owner.send(`<iq type='set' id='b1' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='juliet@localhost' affiliation='outcast'/></query></iq>`)
	owner.until("id='b1'")
	a.until("code='301'")
	b.send(`<presence to='` + hall + `/Jules'/>`)
	if got := b.until("</presence>"); !strings.Contains(got, "forbidden") {
		t.Fatalf("banned account rejoined: %q", got)
	}
	// Unknown config fields are refused and change nothing.
	owner.send(`<iq type='set' id='c2' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_bogus'><value>1</value></field></x></query></iq>`)
	if got := owner.until("id='c2'"); !strings.Contains(got, "bad-request") {
		t.Fatalf("unknown config field: %q", got)
	}
}

// When the service stops, attached sessions hear that they are out (332)
// before their streams end.
func TestMUCShutdown(t *testing.T) {
	addr := mucServer(t)
	c := dial(t, addr)
	c.loginAs("romeo", "desk")
	c.send(`<presence to='` + hall + `/Romeo'/>`)
	if got := c.until("</message>"); !strings.Contains(got, "code='201'") {
		t.Fatalf("join: %q", got)
	}
	go stops[addr]()
	got := c.until("</stream:stream>")
	if i := strings.Index(got, "code='332'"); i < 0 || i > strings.Index(got, "system-shutdown") {
		t.Fatalf("at shutdown the session got %q", got)
	}
}

// An IQ to an occupant reaches one client of its account from the asker's
// room JID, and the answer comes back from the occupant's room JID with
// the asker's id.
func TestMUCOccupantIQ(t *testing.T) {
	addr := mucServer(t)
	r, j := dial(t, addr), dial(t, addr)
	r.loginAs("romeo", "desk")
	j.login("balcony")
	r.send(`<presence to='` + hall + `/Romeo'/>`)
	r.until("</message>")
	r.send(`<iq type='set' id='cfg' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>`)
	r.until("id='cfg'")
	j.send(`<presence to='` + hall + `/Juliet'/>`)
	j.until("</message>")

	j.send(`<iq type='get' id='v1' to='` + hall + `/Romeo'><query xmlns='jabber:iq:version'/></iq>`)
	got := r.until("jabber:iq:version")
	if !strings.Contains(got, "from='"+hall+"/Juliet'") || strings.Contains(got, "id='v1'") {
		t.Fatalf("forwarded IQ: %q", got)
	}
	i := strings.Index(got, "id='muc-")
	fid := got[i+4 : i+4+strings.IndexByte(got[i+4:], '\'')]
	r.send(`<iq type='result' id='` + fid + `' to='` + hall + `/Juliet'><query xmlns='jabber:iq:version'><name>Romeo's client</name></query></iq>`)
	if got := j.until("Romeo's client"); !strings.Contains(got, "id='v1'") || !strings.Contains(got, "from='"+hall+"/Romeo'") {
		t.Fatalf("answer: %q", got)
	}
	// An unknown nick, and a room the asker is not in.
	j.send(`<iq type='get' id='v2' to='` + hall + `/Nobody'><query xmlns='jabber:iq:version'/></iq>`)
	if got := j.until("id='v2'"); !strings.Contains(got, "item-not-found") {
		t.Fatalf("IQ to an unknown nick: %q", got)
	}
}

// A room event that no command of this server made (another process or
// node appended it) reaches the attached sessions from the log.
func TestMUCEventFromAnotherProcess(t *testing.T) {
	_, rooms, owner, _ := hallWithOwner(t)
	rooms.mu.Lock()
	st := rooms.rooms[hall]
	out, err := room.Decide(st, room.Post{Account: "romeo@localhost", ID: "01ELSEWHERE",
		Stanza: "<message xmlns='jabber:client' type='groupchat' from='" + hall + "/Romeo' id='x'><body>from elsewhere</body></message>"},
		rooms.ids, time.Now(), "test")
	if err == nil {
		_, err = rooms.appendLocked(hall, out.Events)
	}
	rooms.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := owner.until("from elsewhere"); !strings.Contains(got, "id='01ELSEWHERE'") {
		t.Errorf("the message without its archive ID: %q", got)
	}
}
