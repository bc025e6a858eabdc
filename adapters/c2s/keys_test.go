package c2s

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

// SCRAM's made-up salt for a crafted name used to be the occupant id of
// that name's room and account (one key, one HMAC), unmasking accounts in
// semi-anonymous rooms. With a key per purpose it is not.
func TestFakeSaltIsNoOccupantID(t *testing.T) {
	addr, rooms := mucServerRooms(t)
	room, acct := "room@conference.localhost", "juliet@localhost"
	id, err := base64.RawURLEncoding.DecodeString(rooms.service.OccupantID(room, acct))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	c.send(header)
	c.until("</stream:features>")
	crafted := "occupant-id\x00" + room + "\x00" + acct
	c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` +
		base64.StdEncoding.EncodeToString([]byte("n,,n="+crafted+",r=abc")) + `</auth>`)
	got := c.until("</challenge>")
	m := regexp.MustCompile(`<challenge[^>]*>([^<]*)</challenge>`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no challenge: %q", got)
	}
	first, _ := base64.StdEncoding.DecodeString(m[1])
	_, s, _ := strings.Cut(string(first), ",s=")
	s, _, _ = strings.Cut(s, ",")
	salt, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(salt) != 16 {
		t.Fatalf("server-first-message %q: no salt", first)
	}
	if string(salt) == string(id[:16]) {
		t.Fatal("the salt made up for a crafted name is the occupant id of an account in a room")
	}
}
