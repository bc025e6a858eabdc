package muc

// Room vCards (XEP-0054 on a room's JID) and the avatar in them (XEP-0486).

import (
	"context"
	"strings"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/vcard"
)

// roomVCard answers a vCard get or set on a room: anyone who may see the
// room (avatarVisible) gets its vCard, an empty one when none was set;
// its owners set it (room.SetVCard), which the room's occupants learn as a
// configuration change (status 104, XEP-0486 §3.2) from the log.
func (c *conn) roomVCard(ctx context.Context, e *element, q element, st room.State, reply func(string) error, fail func(error) error) error {
	if q.XMLName.Local != "vCard" {
		return c.write(c.errorReplyText(e, "modify", "bad-request", "vcard-temp has a vCard element only"))
	}
	if e.Attr("type") == "get" {
		if !avatarVisible(st, c.acct) {
			return fail(room.ErrForbidden)
		}
		if st.VCard.XML == "" {
			// A room is no user, whose missing vCard XEP-0054 §3.3 makes an
			// error: an owner's client reads the room's before it edits it.
			return reply(vcard.Empty)
		}
		return reply(st.VCard.XML)
	}
	x := "<vCard xmlns='" + vcard.NS + "'>" + string(q.Inner) + "</vCard>"
	acct := c.acct
	if _, _, _, err := c.srv.roomDo(ctx, st.JID, func(room.State) any {
		return room.SetVCard{By: acct, XML: x, MaxBytes: c.srv.cfg.VCardMaxBytes}
	}); err != nil {
		return fail(err)
	}
	return reply("")
}

// avatarVisible reports whether viewer may see the room's vCard and its
// avatar's hash: as for its description (roomInfo), those who may read
// the room from outside (room.State.Insider), and anyone when the room is
// not members-only, so that a client shows the avatar before it joins
// (XEP-0486 §2).
func avatarVisible(st room.State, viewer string) bool {
	return st.Insider(viewer) || !st.Config.MembersOnly
}

// avatarField is the room's muc#roominfo_avatarhash (XEP-0486 §3.3): the
// hash of each of its vCard's photos; "" when it has none or viewer may
// not see it.
func avatarField(st room.State, viewer string) string {
	if len(st.VCard.PhotoHashes) == 0 || !avatarVisible(st, viewer) {
		return ""
	}
	var b strings.Builder
	b.WriteString("<field var='muc#roominfo_avatarhash' type='text-multi' label='Avatar hash'>")
	for _, h := range st.VCard.PhotoHashes {
		b.WriteString("<value>" + stanza.Escape(h) + "</value>")
	}
	b.WriteString("</field>")
	return b.String()
}
