package c2s

import (
	"context"
	"strings"
	"testing"

	"annals.im/annals/adapters/features/mam"
	"annals.im/annals/adapters/features/muc"
	"annals.im/annals/adapters/keys"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/room"
)

// mucServerRooms is mucServer with its rooms at hand.
func mucServerRooms(t *testing.T) (string, *memRooms) {
	return mucServerWith(t, func(*muc.Config) {})
}

// mucServerWith is mucServerRooms with the room service's configuration
// adjusted by tweak.
func mucServerWith(t *testing.T, tweak func(*muc.Config)) (string, *memRooms) {
	rooms := newMemRooms()
	addr := serverMounting(t, func(cfg *Config) { cfg.Accounts = noContacts{} }, func(srv *Server) {
		key, err := keys.Derive(srv.cfg.Secret, keys.OccupantID)
		if err != nil {
			t.Fatal(err)
		}
		mcfg := muc.Config{Domain: "conference.localhost", Domains: srv.cfg.Domains, Rooms: rooms,
			LockNewRooms: true, OccupantKey: key, Log: srv.cfg.Log, RoomArchive: mam.New(emptyArchives{}, 0, srv.cfg.Log)}
		tweak(&mcfg)
		svc, err := muc.New(mcfg, srv)
		if err != nil {
			t.Fatal(err)
		}
		svc.Register(srv.cfg.Mux)
		rooms.service = svc
	})
	rooms.follow(t, servers[addr])
	return addr, rooms
}

// Fields of the room configuration form (muc#roomconfig, XEP-0045 §15.5.3).
const (
	cfgDesc        = "muc#roomconfig_roomdesc"
	cfgMembersOnly = "muc#roomconfig_membersonly"
	cfgPWProtected = "muc#roomconfig_passwordprotectedroom"
	cfgSecret      = "muc#roomconfig_roomsecret"
)

// emptyArchives hold nothing: the rooms' archives of these tests.
type emptyArchives struct{}

func (emptyArchives) Query(context.Context, string, archive.Query) (archive.Page, error) {
	return archive.Page{Complete: true}, nil
}
func (emptyArchives) Bounds(context.Context, string) (first, last archive.Entry, ok bool, err error) {
	return first, last, false, nil
}
func (emptyArchives) Prefs(context.Context, string) (archive.Prefs, error) {
	return archive.Prefs{}, nil
}
func (emptyArchives) SetPrefs(context.Context, string, archive.Prefs) error { return nil }

// hallWithOwner starts a server with a room service, logs Romeo in and has
// him create the hall (locked until configured), and logs Juliet in: the
// start of every MUC test here.
func hallWithOwner(t *testing.T) (addr string, rooms *memRooms, owner, jul *rawClient) {
	t.Helper()
	addr, rooms = mucServerRooms(t)
	owner, jul = dial(t, addr), dial(t, addr)
	owner.loginAs("romeo", "o")
	jul.login("balcony")
	owner.send(`<presence to='` + hall + `/Romeo'/>`)
	owner.until("code='201'")
	return addr, rooms, owner, jul
}

// configure submits fields (var -> value) to the room as its owner.
func configure(t *testing.T, owner *rawClient, id string, fields map[string]string) {
	t.Helper()
	var b strings.Builder
	for v, val := range fields {
		b.WriteString("<field var='" + v + "'><value>" + val + "</value></field>")
	}
	owner.send(`<iq type='set' id='` + id + `' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` + b.String() + `</x></query></iq>`)
	if got := owner.until("id='" + id + "'"); !strings.Contains(got, "type='result'") {
		t.Fatalf("configuring: %q", got)
	}
}

// A room password set by its owner is kept as a salted PBKDF2 verifier;
// joins with the wrong or no password are refused, the right one enters;
// a room configured before verifiers (a legacy hash) still lets the right
// password in.
func TestMUCRoomPassword(t *testing.T) {
	_, rooms, owner, jul := hallWithOwner(t)
	configure(t, owner, "cfg", map[string]string{cfgPWProtected: "1", cfgSecret: "s3cret"})
	st, _ := rooms.Get(t.Context(), hall)
	if h := st.Config.PasswordHash; !strings.HasPrefix(h, "$pbkdf2-sha256$i=") || strings.Contains(h, "s3cret") {
		t.Fatalf("stored verifier %q", h)
	}
	for i, pw := range []string{"", "<password>secret</password>"} {
		jul.send(`<presence to='` + hall + `/Juliet' id='j` + string(rune('0'+i)) + `'><x xmlns='http://jabber.org/protocol/muc'>` + pw + `</x></presence>`)
		if got := jul.until("</presence>"); !strings.Contains(got, "not-authorized") {
			t.Fatalf("join with %q: %q", pw, got)
		}
	}
	jul.send(`<presence to='` + hall + `/Juliet'><x xmlns='http://jabber.org/protocol/muc'><password>s3cret</password></x></presence>`)
	jul.until("code='110'")
	jul.send(`<presence to='` + hall + `/Juliet' type='unavailable'/>`)
	jul.until("type='unavailable'")

	// A verifier from before: the legacy SHA-256 of the room and password.
	rooms.mu.Lock()
	st = rooms.rooms[hall]
	st.Config.PasswordHash = room.LegacyPasswordHash(hall, "montague")
	rooms.rooms[hall] = st
	rooms.mu.Unlock()
	jul.send(`<presence to='` + hall + `/Juliet'><x xmlns='http://jabber.org/protocol/muc'><password>s3cret</password></x></presence>`)
	if got := jul.until("</presence>"); !strings.Contains(got, "not-authorized") {
		t.Fatalf("old password after the change: %q", got)
	}
	jul.send(`<presence to='` + hall + `/Juliet'><x xmlns='http://jabber.org/protocol/muc'><password>montague</password></x></presence>`)
	jul.until("code='110'")
}

// XEP-0045 §7.5: a private message of type groupchat is refused with
// bad-request and reaches nobody; a chat one still goes through.
func TestMUCPrivateGroupchatRefused(t *testing.T) {
	_, _, owner, jul := hallWithOwner(t)
	configure(t, owner, "cfg", nil)
	jul.send(`<presence to='` + hall + `/Juliet'/>`)
	jul.until("code='110'")
	owner.until(hall + "/Juliet")
	jul.send(`<message to='` + hall + `/Romeo' type='groupchat' id='fake'><subject>The room is closed, go to evil@example.com</subject></message>`)
	if got := jul.until("id='fake'"); !strings.Contains(got, "type='error'") || !strings.Contains(got, "bad-request") {
		t.Fatalf("groupchat-typed private message: %q", got)
	}
	jul.send(`<message to='` + hall + `/Romeo' type='chat' id='pm'><body>psst</body></message>`)
	if got := owner.until("psst"); strings.Contains(got, "evil@example.com") {
		t.Fatalf("the forged subject reached its victim: %q", got)
	}
}

// From outside, a password-protected or members-only room shows neither
// its archive nor its subject (nor, members-only, its description);
// an open room shows both, and its members and occupants see everything.
func TestMUCOutsiders(t *testing.T) {
	_, _, owner, jul := hallWithOwner(t)
	configure(t, owner, "c0", map[string]string{cfgDesc: "plans for the ball"})
	owner.send(`<message to='` + hall + `' type='groupchat' id='s'><subject>masks at nine</subject></message>`)
	owner.until("masks at nine")

	n := 0
	look := func(wantArchive, wantSubject, wantDesc bool) {
		t.Helper()
		n++
		id := string(rune('a' + n))
		jul.send(`<iq type='get' id='mam` + id + `' to='` + hall + `'><query xmlns='urn:xmpp:mam:2'/></iq>`)
		if got := jul.until("id='mam" + id + "'"); strings.Contains(got, "forbidden") == wantArchive {
			t.Errorf("step %d: archive readable %v: %q", n, wantArchive, got)
		}
		jul.send(`<iq type='get' id='info` + id + `' to='` + hall + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
		got := jul.until("id='info" + id + "'")
		got = got[strings.Index(got, "id='info"+id+"'"):]
		got = got[:strings.Index(got, "</iq>")]
		if strings.Contains(got, "masks at nine") != wantSubject || strings.Contains(got, "muc#roominfo_occupants") != wantSubject {
			t.Errorf("step %d: subject and occupants shown %v: %q", n, wantSubject, got)
		}
		if strings.Contains(got, "plans for the ball") != wantDesc {
			t.Errorf("step %d: description shown %v: %q", n, wantDesc, got)
		}
	}
	look(true, true, true) // open and public
	configure(t, owner, "c1", map[string]string{cfgPWProtected: "1", cfgSecret: "s3cret"})
	look(false, false, true)
	configure(t, owner, "c2", map[string]string{cfgPWProtected: "0", cfgMembersOnly: "1"})
	look(false, false, false)
	owner.send(`<iq type='set' id='m' to='` + hall + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='juliet@localhost' affiliation='member'/></query></iq>`)
	owner.until("id='m'")
	look(true, true, true)
}
