package c2s

// Rooms at services this server mirrors (DMUC3, docs/dmuc.md): an
// account joins them as any room elsewhere (remoterooms.go), through the
// mirror service (adapters/features/mirror), which hands it what the
// master says once for every account here and keeps what they say while
// the link is lost.

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
)

// Mirror is the mirror service, as the session core needs it.
type Mirror interface {
	// Post records and sends a groupchat message an account here sends a
	// mirrored room as nick; wire is the stanza from its occupant JID.
	Post(ctx context.Context, room jid.JID, acct, nick, wire string) error
	// Refused takes the master's refusal of the message with id that
	// acct sent the room (a stanza error condition).
	Refused(ctx context.Context, room jid.JID, acct, id, cond string)
}

// mirrored reports whether room j is at a service this server mirrors.
func (s *Server) mirrored(j jid.JID) bool {
	return s.cfg.MirrorDomain != "" && slices.Contains(s.cfg.MirrorOf, j.Domainpart())
}

// FromMirror hands what a mirrored room said (a presence or groupchat
// message from it, its sequence checked and applied by the mirror
// service) to every account here that is in the room: kept for sessions
// that attach later and forked to the attached ones, as what a room
// elsewhere sends an account's occupant JID.
func (s *Server) FromMirror(from jid.JID, e *stanza.Element) {
	room := from.Bare().String()
	s.remote.mu.Lock()
	nicks := map[string]string{} // account -> its nick in the room
	for acct, rooms := range s.remote.rooms {
		if rr := rooms[room]; rr != nil {
			nicks[acct] = rr.nick
		}
	}
	s.remote.mu.Unlock()
	for acct, nick := range nicks {
		a, err := jid.Parse(acct)
		if err != nil {
			continue
		}
		here := occupantJID(a)
		mine := e
		if e.XMLName.Local == "presence" && from.Resourcepart() == nick {
			// The master tells the mirror what anyone sees; the account's
			// own presence (a kick, say) is its own to know (status 110).
			mine = withSelfCode(e)
		}
		s.fromRemoteRoom(remoteStanza{peer: peer{srv: s, from: from.String(), domain: here.Domainpart()}, here: here, user: from}, mine)
	}
}

// withSelfCode is presence e with status 110 in its muc#user payload.
func withSelfCode(e *stanza.Element) *stanza.Element {
	x, ok := e.Named(nsMUC+"#user", "x")
	if !ok {
		return e
	}
	rest := stanza.WithoutChildren(e, xml.Name{Space: nsMUC + "#user", Local: "x"})
	c := *e
	c.Inner = append(slices.Clip(rest), ("<x xmlns='" + nsMUC + "#user'>" + string(x.Inner) + "<status code='110'/></x>")...)
	return &c
}

// mirrorPost hands a groupchat message to a mirrored room to the mirror
// service, which sends it to the master or, while the link is lost,
// tells the accounts here itself; a refusal is the client's error.
func (c *conn) mirrorPost(ctx context.Context, e *element, to jid.JID, nick string) {
	wire := stanza.Restamp(e, occupantJID(c.jid).String())
	err := c.srv.cfg.Mirror.Post(ctx, to.Bare(), c.jid.Bare().String(), nick, wire)
	var se *stanza.Error
	switch {
	case err == nil:
	case errors.As(err, &se):
		c.write(c.errorReplyText(e, se.Type, se.Cond, se.Text))
	default:
		c.log.Error("mirror: a message to a mirrored room", "room", to.Bare().String(), "err", err)
		c.write(c.errorReplyText(e, "wait", "internal-server-error", ""))
	}
}

// MirroredRooms lists the rooms at services this server mirrors that
// accounts here are in (the mirror service pings their masters).
func (s *Server) MirroredRooms() []string {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	var out []string
	for _, rooms := range s.remote.rooms {
		for room := range rooms {
			if j, err := jid.Parse(room); err == nil && s.mirrored(j) && !slices.Contains(out, room) {
				out = append(out, room)
			}
		}
	}
	return out
}

// LocalNicks are the nicks of the accounts here in room, and whose.
func (s *Server) LocalNicks(room string) map[string]string {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	out := map[string]string{}
	for acct, rooms := range s.remote.rooms {
		if rr := rooms[room]; rr != nil {
			out[rr.nick] = acct
		}
	}
	return out
}

// Rejoin sends the master of room each account's join again, through
// the mirror, after the link was lost (ProtoXEP §3.5: "the mirror should
// also send presence for its users"). It asks for no history: the
// mirror's resend gave what the sessions missed; the master's answer
// gives them the occupants as they are now.
func (s *Server) Rejoin(room string) {
	s.remote.mu.Lock()
	defer s.remote.mu.Unlock()
	for acct, rooms := range s.remote.rooms {
		rr := rooms[room]
		a, err := jid.Parse(acct)
		if rr == nil || err != nil {
			continue
		}
		to, err := jid.Parse(room + "/" + rr.nick)
		if err != nil {
			continue
		}
		from := occupantJID(a)
		var b strings.Builder
		b.WriteString("<presence xmlns='" + nsClient + "' from='" + stanza.Escape(from.String()) + "' to='" + stanza.Escape(to.String()) + "'>")
		b.WriteString("<x xmlns='" + nsMUC + "'><history maxstanzas='0'/></x>")
		b.WriteString("<dmuc xmlns='" + nsDMUC + "' from='" + stanza.Escape(s.cfg.MirrorDomain) + "'/>")
		if show := bestShow(rr); show != "" {
			b.WriteString("<show>" + stanza.Escape(show) + "</show>")
		}
		b.WriteString("</presence>")
		s.cfg.Remote.Send(from, to, b.String())
	}
}

// ToOccupant hands what a mirrored room sent through the mirror for one
// account (a join refused, ProtoXEP §3.2.2) to that account, as if the
// room had sent it to its occupant JID; false: user is no account's
// occupant JID here in that room.
func (s *Server) ToOccupant(user, from jid.JID, e *stanza.Element) bool {
	if !s.isLocal(user) || user.Resourcepart() != roomsResource {
		return false
	}
	return s.fromRemoteRoom(remoteStanza{peer: peer{srv: s, from: from.String(), domain: user.Domainpart()}, here: user, user: from}, e)
}

// mirrorRefused tells the mirror service that the master refused acct's
// message id to room.
func (s *Server) mirrorRefused(room jid.JID, acct, id, cond string) {
	ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
	defer cancel()
	s.cfg.Mirror.Refused(ctx, room, acct, id, cond)
}
