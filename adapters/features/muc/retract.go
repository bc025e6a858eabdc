package muc

// Retracting one's own message (XEP-0424) and moderating another's
// (XEP-0425), in both the current namespaces (retract:1, moderate:1) and
// the ones slixmpp and older clients speak (XEP-0422 fastening with
// retract:0 and moderate:0). The room records a retraction as an event;
// the archives show a tombstone in the message's place.

import (
	"context"
	"fmt"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/room"
)

const (
	nsRetract1  = "urn:xmpp:message-retract:1"
	nsRetract0  = "urn:xmpp:message-retract:0"
	nsModerate1 = "urn:xmpp:message-moderate:1"
	nsModerate0 = "urn:xmpp:message-moderate:0"
	nsFasten    = "urn:xmpp:fasten:0"
)

// retractsOf reads the retraction a groupchat message carries, if any,
// with the author of the message it names, as the room archive has it.
func (s *Service) retractsOf(ctx context.Context, r string, e *element) room.Retracts {
	id := ""
	if x, ok := e.Named(nsRetract1, "retract"); ok {
		id = x.Attr("id")
	} else if x, ok := e.Named(nsFasten, "apply-to"); ok {
		if _, ok := x.Named(nsRetract0, "retract"); ok {
			id = x.Attr("id")
		}
	}
	if id == "" || s.cfg.Archive == nil {
		return room.Retracts{}
	}
	author, err := s.cfg.Archive.Author(ctx, r, id)
	if err != nil {
		s.cfg.Log.Error("retraction: reading the message's author", "room", r, "id", id, "err", err)
	}
	return room.Retracts{ID: id, Author: author}
}

// moderate answers a moderator's request to retract a message
// (XEP-0425 §4): <moderate id='…' xmlns='urn:xmpp:message-moderate:1'>
// or, fastened (v0.2), <apply-to id='…'><moderate xmlns='…:0'/>. The
// room posts a notice in both forms, which everyone gets from the log and
// the archive keeps, and the archives put a tombstone in the message's
// place.
func (c *conn) moderate(ctx context.Context, e *element, q element, st room.State, reply func(string) error, fail func(error) error) error {
	s := c.srv
	id, reason := q.Attr("id"), ""
	switch q.XMLName.Space {
	case nsModerate1:
		if _, ok := q.Named(nsRetract1, "retract"); !ok {
			return fail(fmt.Errorf("%w: a moderation that retracts nothing", room.ErrInvalid))
		}
		reason = q.ChildText("reason")
	case nsFasten:
		m, ok := q.Named(nsModerate0, "moderate")
		if _, retracts := m.Named(nsRetract0, "retract"); !ok || !retracts {
			return c.write(c.errorReplyText(e, "cancel", "feature-not-implemented", "only moderation is fastened to room messages here"))
		}
		reason = m.ChildText("reason")
	}
	if id == "" || s.cfg.Archive == nil {
		return fail(fmt.Errorf("%w: a moderation names a message", room.ErrInvalid))
	}
	author, err := s.cfg.Archive.Author(ctx, st.JID, id)
	if err != nil {
		return fail(err)
	}
	me := st.Occupants[c.acct]
	by := st.JID + "/" + me.Nick
	reasonXML := ""
	if reason != "" {
		reasonXML = "<reason>" + stanza.Escape(reason) + "</reason>"
	}
	notice := "<message xmlns='" + nsClient + "' type='groupchat' from='" + stanza.Escape(st.JID) + "' id='" + stanza.NewID() + "'>" +
		"<retract xmlns='" + nsRetract1 + "' id='" + stanza.Escape(id) + "'><moderated xmlns='" + nsModerate1 + "' by='" + stanza.Escape(by) + "'>" +
		s.occupantIDXML(st.JID, c.acct) + "</moderated>" + reasonXML + "</retract>" +
		"<apply-to xmlns='" + nsFasten + "' id='" + stanza.Escape(id) + "'><moderated xmlns='" + nsModerate0 + "' by='" + stanza.Escape(by) + "'>" +
		"<retract xmlns='" + nsRetract0 + "'/>" + reasonXML + "</moderated></apply-to>" +
		"<body>A message was retracted by a moderator" + stanza.Escape(reasonSuffix(reason)) + "</body></message>"
	_, _, _, err = s.roomDo(ctx, st.JID, func(room.State) any {
		return room.Moderate{By: c.acct, ID: id, Author: author, Reason: reason, Notice: notice, NoticeID: s.cfg.Rooms.NewID()}
	})
	if err != nil {
		return fail(err)
	}
	return reply("")
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return "."
	}
	return ": " + reason
}
