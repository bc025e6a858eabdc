package muc

// Voice requests (XEP-0045 §7.13, §8.6): a visitor in a moderated room
// asks for voice with a muc#request form sent to the room; the service
// turns it into an approval form for the moderators' attached clients,
// and a moderator's submitted approval grants voice as any role change
// does (RoleChanged, an event of the room with the moderator as By). The
// request itself is not an event: like an invitation, it changes nothing
// until someone acts on it.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/room"
)

const nsMUCRequest = "http://jabber.org/protocol/muc#request"

// DefaultVoiceRequestInterval is --muc-voice-request-interval's default:
// an occupant asks a room's moderators for voice at most this often, so
// that a visitor cannot flood them with forms.
const DefaultVoiceRequestInterval = time.Minute

// maxVoiceRequests bounds the (room, account) pairs whose last request
// is remembered; past it, the expired ones are forgotten, and while none
// is, further requests are refused (resource-constraint).
const maxVoiceRequests = 4096

// voiceRequests remembers when each occupant last asked for voice.
type voiceRequests struct {
	mu   sync.Mutex
	last map[[2]string]time.Time
}

// allow reports whether acct may ask for voice in r at now, and if so
// notes that it did.
func (v *voiceRequests) allow(r, acct string, now time.Time, every time.Duration) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := [2]string{r, acct}
	if t, ok := v.last[k]; ok && now.Sub(t) < every {
		return false
	}
	if len(v.last) >= maxVoiceRequests {
		for old, t := range v.last {
			if now.Sub(t) >= every {
				delete(v.last, old)
			}
		}
		if len(v.last) >= maxVoiceRequests {
			return false
		}
	}
	if v.last == nil {
		v.last = make(map[[2]string]time.Time)
	}
	v.last[k] = now
	return true
}

// mucVoice handles a muc#request form sent to room r: a moderator's
// answer to an approval form, or an occupant's request for voice.
func (c *conn) mucVoice(ctx context.Context, e *element, r string, f *form.Form) error {
	s := c.srv
	st, err := s.cfg.Rooms.Get(ctx, r)
	if err != nil {
		return c.write(c.mucErrorReply(e, r, err, ""))
	}
	me, in := st.Occupants[c.acct]
	if !in {
		return c.write(c.mucErrorReply(e, r, room.ErrNotOccupant, ""))
	}
	if allow, ok := f.Field("muc#request_allow"); ok && me.Role == room.Moderator {
		return c.approveVoice(ctx, e, st, f, allow)
	}
	if role, _ := f.Field("muc#role"); role.Value() != string(room.Participant) {
		return c.write(c.mucErrorReply(e, r, stanza.Errorf("bad-request", "a voice request asks for the participant role"), ""))
	}
	if me.Role != room.Visitor {
		return c.write(c.mucErrorReply(e, r, stanza.Errorf("bad-request", "only a visitor asks for voice: this occupant has it"), ""))
	}
	var to []string
	for _, o := range st.Occupants {
		if o.Role != room.Moderator {
			continue
		}
		for _, t := range s.muc.sessions(r, o.Account) {
			to = append(to, t.JID().String())
		}
	}
	if len(to) == 0 {
		return c.write(c.mucErrorReply(e, r, &stanza.Error{Type: "wait", Cond: "recipient-unavailable", Text: "no moderator of the room is online to approve it"}, ""))
	}
	if !s.voice.allow(r, c.acct, time.Now(), s.cfg.VoiceRequestInterval) {
		return c.write(c.mucErrorReply(e, r, &stanza.Error{Type: "wait", Cond: "resource-constraint",
			Text: "voice was asked for less than " + s.cfg.VoiceRequestInterval.String() + " ago"}, ""))
	}
	wire := approvalForm(r, s.cfg.Rooms.NewID(), c.acct, me.Nick)
	for _, m := range st.Occupants {
		if m.Role != room.Moderator {
			continue
		}
		for _, t := range s.muc.sessions(r, m.Account) {
			t.Deliver(fmt.Sprintf(wire, stanza.Escape(t.JID().String())), true)
		}
	}
	return nil
}

// approvalForm is the message that asks a moderator to grant voice
// (§8.6), its 'to' left as %s.
func approvalForm(r, id, acct, nick string) string {
	var b strings.Builder
	b.WriteString("<message xmlns='" + nsClient + "' from='" + stanza.Escape(r) + "' to='%s' id='" + stanza.Escape(id) + "'>")
	b.WriteString("<x xmlns='" + form.NS + "' type='form'><title>Voice request</title>")
	b.WriteString("<instructions>" + stanza.Escape(nick) + " asks for voice. To grant it, check the box and submit the form.</instructions>")
	b.WriteString("<field var='FORM_TYPE' type='hidden'><value>" + nsMUCRequest + "</value></field>")
	b.WriteString("<field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>")
	b.WriteString("<field var='muc#jid' type='jid-single' label='User ID'><value>" + stanza.Escape(acct) + "</value></field>")
	b.WriteString("<field var='muc#roomnick' type='text-single' label='Room Nickname'><value>" + stanza.Escape(nick) + "</value></field>")
	b.WriteString("<field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>false</value></field>")
	b.WriteString("</x></message>")
	return b.String()
}

// approveVoice carries out a moderator's submitted approval form: voice
// for the occupant it names, if it allows it and the occupant is still
// a visitor; nothing otherwise.
func (c *conn) approveVoice(ctx context.Context, e *element, st room.State, f *form.Form, allow form.Field) error {
	ok, err := allow.Bool()
	if err != nil {
		return c.write(c.mucErrorReply(e, st.JID, stanza.Errorf("bad-request", err.Error()), ""))
	}
	if !ok {
		return nil // the moderator declined
	}
	nick, _ := f.Field("muc#roomnick")
	target, found := st.ByNick(nick.Value())
	if !found {
		return c.write(c.mucErrorReply(e, st.JID, stanza.Errorf("item-not-found", "no occupant of the room has that nick"), ""))
	}
	if target.Role != room.Visitor {
		return nil // voice came another way, or the occupant went
	}
	if _, _, _, err := c.srv.roomDo(ctx, st.JID, func(room.State) any {
		return room.SetRole{By: c.acct, Nick: target.Nick, Role: room.Participant}
	}); err != nil {
		return c.write(c.mucErrorReply(e, st.JID, err, ""))
	}
	return nil // the role change is told from the log
}
