package c2s

import (
	"strings"
	"testing"

	"annals.im/annals/adapters/features/muc"
)

// png1 is a 1x1 PNG; pngSHA1 the SHA-1 of its bytes (sha1sum).
const (
	png1    = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	pngSHA1 = "b2bbe763c7e1828c750d53f78550709a6fea19be"
)

// A room's vCard (XEP-0486): empty until an owner sets it, readable by
// anyone who may see the room, set by its owners only and within the
// limit; its occupants are told with status 104, and its photo's hash is
// in its disco#info, which the room service advertises vcard-temp in; a
// members-only room shows neither to a stranger.
func TestMUCRoomVCard(t *testing.T) {
	addr, _ := mucServerWith(t, func(c *muc.Config) { c.VCardMaxBytes = 1024 })
	owner, jul := dial(t, addr), dial(t, addr)
	owner.loginAs("romeo", "o")
	jul.login("balcony")
	owner.send(`<presence to='` + hall + `/Romeo'/>`)
	owner.until("code='201'")
	configure(t, owner, "cfg", map[string]string{})
	ask := func(c *rawClient, id, iq string) string {
		t.Helper()
		c.send(strings.Replace(iq, "<iq ", "<iq id='"+id+"' ", 1))
		return c.until("id='" + id + "'")
	}
	get := "<iq type='get' to='" + hall + "'><vCard xmlns='vcard-temp'/></iq>"
	withPhoto := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + png1 + "</BINVAL></PHOTO></vCard>"
	set := func(v string) string { return "<iq type='set' to='" + hall + "'>" + v + "</iq>" }
	info := "<iq type='get' to='" + hall + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"

	if got := ask(jul, "g0", get); !strings.Contains(got, "type='result'") || !strings.Contains(got, "<vCard xmlns='vcard-temp'/>") {
		t.Fatalf("before any vCard: %q", got)
	}
	if got := ask(jul, "s0", set(withPhoto)); !strings.Contains(got, "<forbidden ") {
		t.Fatalf("a stranger set the room's vCard: %q", got)
	}
	if got := ask(owner, "s1", set(withPhoto)); !strings.Contains(got, "type='result'") {
		t.Fatalf("the owner's set: %q", got)
	}
	jul.send(`<presence to='` + hall + `/Juliet'/>`)
	jul.until("code='110'")
	if got := ask(jul, "s2", set("<vCard xmlns='vcard-temp'><FN>Juliet's now</FN></vCard>")); !strings.Contains(got, "<forbidden ") {
		t.Fatalf("a participant set the room's vCard: %q", got)
	}
	if got := ask(owner, "s3", set(strings.Replace(withPhoto, "<PHOTO>", "<FN>The hall</FN><PHOTO>", 1))); !strings.Contains(got, "type='result'") {
		t.Fatalf("the owner's second set: %q", got)
	}
	if got := jul.until("code='104'"); !strings.Contains(got, "from='"+hall+"'") {
		t.Fatalf("the occupant was not told: %q", got)
	}
	if got := ask(jul, "g1", get); !strings.Contains(got, "<BINVAL>"+png1+"</BINVAL>") || !strings.Contains(got, "<FN>The hall</FN>") {
		t.Fatalf("the room's vCard: %q", got)
	}
	if got := ask(owner, "s4", set("<vCard xmlns='vcard-temp'><DESC>"+strings.Repeat("long ", 250)+"</DESC></vCard>")); !strings.Contains(got, "<not-acceptable ") {
		t.Fatalf("a vCard over the limit: %q", got)
	}
	got := ask(jul, "i1", info)
	if !strings.Contains(got, "<feature var='vcard-temp'/>") ||
		!strings.Contains(got, "<field var='muc#roominfo_avatarhash' type='text-multi' label='Avatar hash'><value>"+pngSHA1+"</value></field>") {
		t.Fatalf("disco#info: %q", got)
	}
	if got := ask(jul, "i2", "<iq type='get' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"); !strings.Contains(got, "<feature var='vcard-temp'/>") {
		t.Fatalf("the service's disco#info: %q", got)
	}
	// Members only: juliet, no member, is taken out and sees neither.
	configure(t, owner, "cfg2", map[string]string{cfgMembersOnly: "1"})
	jul.until("code='322'")
	if got := ask(jul, "g2", get); !strings.Contains(got, "<forbidden ") {
		t.Fatalf("a members-only room's vCard to a stranger: %q", got)
	}
	if got := ask(jul, "i3", info); strings.Contains(got, "avatarhash") || !strings.Contains(got, "type='result'") {
		t.Fatalf("a members-only room's disco#info to a stranger: %q", got)
	}
}
