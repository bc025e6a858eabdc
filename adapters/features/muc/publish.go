package muc

// Telling a room's sessions what its events did, and detaching them.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// publishRoom tells the room's sessions what event e did to the room,
// before and after it.
func (s *Service) publishRoom(before, after room.State, e event.Envelope) {
	v := e.Version
	switch e.Type {
	case room.TypeJoined:
		var d room.Joined
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		if o, ok := after.Occupants[d.Account]; ok {
			s.publishJoin(after, o, v)
		}
	case room.TypeMessagePosted:
		var d room.MessagePosted
		if e.Decode(room.Schema, &d) != nil || d.Erased {
			return // an erased message is told to nobody (adapters/sealing)
		}
		msg := stanza.InsertChild(d.Stanza, stanza.IDElement(after.JID, d.ID))
		for acct, o := range after.Occupants {
			if o.Via != "" {
				continue // its mirror tells it
			}
			// Each account's copy also carries the ID its own archive has;
			// an occupant from elsewhere has no archive here.
			own := msg
			if s.local(acct) {
				own = stanza.InsertChild(msg, stanza.IDElement(acct, d.ID))
			}
			s.muc.tell(after.JID, acct, v, func(c mux.Session) string { return stanza.WithTo(own, c.JID().String()) }, true)
		}
	case room.TypeSubjectSet:
		var d room.SubjectSet
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		s.roomBroadcast(after, v, func(_, to string) string { return subjectXML(after.JID, d, to) }, true)
	case room.TypeConfigured, room.TypeVCardSet:
		if !before.Exists || before.Locked {
			return // the first configuration unlocks a room nobody else is in
		}
		// Status 104: the configuration changed (XEP-0045 §10.2.1), or the
		// room's vCard, its avatar (XEP-0486 §3.2).
		s.roomBroadcast(after, v, func(_, to string) string { return configChangedXML(after.JID, to) }, false)
	case room.TypePresenceChanged, room.TypeRoleSet, room.TypeAffiliationSet:
		var d struct {
			Account string `json:"account"`
			JID     string `json:"jid"`
		}
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		o, ok := after.Occupants[d.Account+d.JID]
		if !ok {
			return // not in the room (or leaving: its exit says it)
		}
		s.announcePresence(after, o, v)
	case room.TypeNickChanged:
		var d room.NickChanged
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		o, old := after.Occupants[d.Account], before.Occupants[d.Account]
		// XEP-0045 §7.6: unavailable from the old nick with 303 and the
		// new one, then available from the new nick.
		s.roomBroadcast(after, v, func(viewer, to string) string {
			codes := []int{303}
			if viewer == o.Account {
				codes = append(codes, 110)
			}
			return s.nickGoneXML(after, old, o.Nick, viewer, to, codes)
		}, false)
		s.announcePresence(after, o, v)
	case room.TypeLeft:
		var d room.Left
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		s.announceExit(before, after, v, d)
	case room.TypeDestroyed:
		var d room.Destroyed
		if e.Decode(room.Schema, &d) != nil {
			return
		}
		s.announceDestroyed(before, v, d)
	}
	s.publishMirrors(before, after, e)
}

// subjectXML is the message that tells the subject d (XEP-0045 §8.1).
func subjectXML(r string, d room.SubjectSet, to string) string {
	return fmt.Sprintf(`<message xmlns='%s' type='groupchat' from='%s' to='%s' id='%s'><subject>%s</subject></message>`,
		nsClient, stanza.Escape(r+"/"+d.Nick), stanza.Escape(to), stanza.NewID(), stanza.Escape(d.Subject))
}

// configChangedXML is status 104: the configuration changed (XEP-0045 §10.2.1).
func configChangedXML(r, to string) string {
	return fmt.Sprintf(`<message xmlns='%s' type='groupchat' from='%s' to='%s' id='%s'><x xmlns='%s'><status code='104'/></x></message>`,
		nsClient, stanza.Escape(r), stanza.Escape(to), stanza.NewID(), nsMUCUser)
}

// nickGoneXML is old's unavailable presence of a nick change to nick
// (XEP-0045 §7.6).
func (s *Service) nickGoneXML(st room.State, old room.Occupant, nick, viewer, to string, codes []int) string {
	x := s.occupantXML(st, old, viewer, to, "unavailable", codes, "")
	return strings.Replace(x, "<item ", "<item nick='"+stanza.Escape(nick)+"' ", 1)
}

// exitXML is o's unavailable presence of leaving with d, as viewer sees
// it (self codes in codes), with the reason, and an occupant's own exit
// text (XEP-0045 §7.14).
func (s *Service) exitXML(st room.State, o room.Occupant, d room.Left, viewer, to string, codes []int) string {
	inner := ""
	if d.Reason != "" && d.Cause != "leave" {
		inner = "<reason>" + stanza.Escape(d.Reason) + "</reason>"
	}
	x := s.occupantXML(st, o, viewer, to, "unavailable", codes, inner)
	if d.Cause == "leave" && d.Reason != "" {
		x = stanza.InsertChild(x, "<status>"+stanza.Escape(d.Reason)+"</status>")
	}
	return x
}

// destroyedXML is o's unavailable presence in a room destroyed with d
// (XEP-0045 §10.9).
func (s *Service) destroyedXML(st room.State, o room.Occupant, d room.Destroyed, viewer, to string, codes []int) string {
	inner := "<destroy"
	if d.Alternate != "" {
		inner += " jid='" + stanza.Escape(d.Alternate) + "'"
	}
	inner += ">"
	if d.Reason != "" {
		inner += "<reason>" + stanza.Escape(d.Reason) + "</reason>"
	}
	inner += "</destroy>"
	o.Role = room.NoRole
	return strings.Replace(s.occupantXML(st, o, viewer, to, "unavailable", codes, ""), "</item>", "</item>"+inner, 1)
}

// announcePresence tells every session in the room occupant o's presence,
// its own sessions with their self codes.
func (s *Service) announcePresence(st room.State, o room.Occupant, version uint64) {
	s.roomBroadcast(st, version, func(viewer, to string) string {
		var codes []int
		if viewer == o.Account {
			codes = selfCodes(st)
		}
		return s.occupantXML(st, o, viewer, to, "", codes, "")
	}, false)
}

// roomBroadcast sends each occupant's attached sessions what stanza builds
// for that occupant (nothing when it returns ""), as the event at version
// tells it.
func (s *Service) roomBroadcast(st room.State, version uint64, stanza func(viewer string, to string) string, urgent bool) {
	for acct, o := range st.Occupants {
		if o.Via != "" {
			continue // its mirror tells it (publishMirrors)
		}
		s.muc.tell(st.JID, acct, version, func(c mux.Session) string { return stanza(acct, c.JID().String()) }, urgent)
	}
}

// publishJoin shows a new occupant to every session in the room; its own
// sessions already attached get their self-presence (the joining session
// has it in its join's answer).
func (s *Service) publishJoin(st room.State, me room.Occupant, version uint64) {
	s.roomBroadcast(st, version, func(viewer, to string) string {
		if viewer != me.Account {
			return s.occupantXML(st, me, viewer, to, "", nil, "")
		}
		return s.occupantXML(st, me, viewer, to, "", selfCodes(st), "")
	}, true)
}

// exitCodes are the status codes of each cause of leaving (XEP-0045 §15.6).
var exitCodes = map[string]int{"kick": 307, "ban": 301, "affiliation": 321, "members-only": 322, "shutdown": 332, "error": 333}

// announceExit tells everyone in the room, and every session of the
// account that left, that it is gone; the account's sessions detach.
func (s *Service) announceExit(before, after room.State, version uint64, d room.Left) {
	o, ok := before.Occupants[d.Account]
	if !ok {
		return
	}
	o.Role = room.NoRole
	codes := exitCodesOf(d)
	s.roomBroadcast(after, version, func(viewer, to string) string { return s.exitXML(after, o, d, viewer, to, codes) }, false)
	self := append([]int{110}, codes...)
	s.muc.tellExit(after.JID, d.Account, version, func(c mux.Session) string {
		return s.exitXML(after, o, d, d.Account, c.JID().String(), self)
	})
}

// exitCodesOf are the status codes others see of an exit.
func exitCodesOf(d room.Left) []int {
	if code, ok := exitCodes[d.Cause]; ok {
		return []int{code}
	}
	return nil
}

// announceDestroyed tells every session in a destroyed room (§10.9).
func (s *Service) announceDestroyed(before room.State, version uint64, d room.Destroyed) {
	for acct, o := range before.Occupants {
		s.muc.tellExit(before.JID, acct, version, func(c mux.Session) string {
			return s.destroyedXML(before, o, d, acct, c.JID().String(), []int{110})
		})
	}
}

// Shutdown tells every attached session that it is out of its rooms
// because the service stops (status 332). The accounts stay occupants:
// the rooms and their rosters are in the log, and a client attaches again
// when it rejoins after the restart.
func (s *Service) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
	defer cancel()
	s.muc.mu.Lock()
	type attached struct {
		room, acct string
		c          mux.Session
	}
	var all []attached
	for r, accts := range s.muc.rooms {
		for acct, sessions := range accts {
			for c := range sessions {
				all = append(all, attached{r, acct, c})
			}
		}
	}
	s.muc.mu.Unlock()
	states := map[string]room.State{}
	for _, a := range all {
		st, ok := states[a.room]
		if !ok {
			var err error
			if st, err = s.cfg.Rooms.Get(ctx, a.room); err != nil {
				continue
			}
			states[a.room] = st
		}
		o, in := st.Occupants[a.acct]
		if !in {
			continue
		}
		o.Role = room.NoRole
		a.c.Deliver(s.occupantXML(st, o, a.acct, a.c.JID().String(), "unavailable", []int{110, 332}, ""), true)
	}
}

// SessionGone detaches a session that ended, or that said it is
// unavailable, from its rooms: the account stays in them, and its
// presence there follows its remaining sessions (XEP-0045 has no way to
// say "no client", so xa); but an account whose bookmark of a room says
// no autojoin leaves it with its last client.
func (s *Service) SessionGone(c mux.Session) {
	acct := s.occupantOf(c.JID())
	ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
	defer cancel()
	for _, r := range s.muc.detachSession(c) {
		if _, attached := s.attachedShow(r, acct); !attached && !s.holds(ctx, acct, r) {
			s.leaveUnheld(event.WithCause(ctx, "server:muc-bookmark"), acct, r)
			continue
		}
		s.roomDo(ctx, r, func(st room.State) any {
			o := st.Occupants[acct]
			return room.SetPresence{Account: acct, Show: s.roomShow(r, acct), Status: o.Status}
		})
	}
}

// ElsewhereGone is SessionGone for the sessions of acct that another node
// of a cluster had attached to room r, gone with their node: unless a
// client of the account is still attached, here or on a third node, the
// account shows as detached, or leaves if no bookmark holds it. Every
// node that saw the loss does it; the second finds nothing to change.
func (s *Service) ElsewhereGone(r, acct string) {
	if _, attached := s.attachedShow(r, acct); attached {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
	defer cancel()
	if !s.holds(ctx, acct, r) {
		s.leaveUnheld(event.WithCause(ctx, "server:muc-bookmark"), acct, r)
		return
	}
	_, _, _, err := s.roomDo(event.WithCause(ctx, "server:cluster-node-lost"), r, func(st room.State) any {
		o := st.Occupants[acct]
		return room.SetPresence{Account: acct, Show: s.roomShow(r, acct), Status: o.Status}
	})
	if err != nil && !errors.Is(err, room.ErrNotOccupant) && !errors.Is(err, room.ErrNotFound) {
		s.cfg.Log.Error("a client's node was lost: its account's show in the room", "room", r, "account", acct, "err", err)
	}
}

// FollowBookmark makes acct join or leave room as a client's change to its
// bookmark of it says (XEP-0402): autojoin joins, with nick or the
// account's local part (no session attached until a client joins); no
// autojoin leaves.
func (s *Service) FollowBookmark(ctx context.Context, acct, r, nick, password string, autojoin bool) {
	st, err := s.cfg.Rooms.Get(ctx, r)
	if err != nil {
		return
	}
	_, in := st.Occupants[acct]
	switch {
	case autojoin && !in:
		if nick == "" {
			nick, _, _ = strings.Cut(acct, "@")
		}
		if _, _, _, err := s.roomJoin(ctx, r, room.Join{Account: acct, Nick: nick, Show: "xa"}, password); err != nil {
			s.cfg.Log.Info("bookmark autojoin refused", "account", acct, "room", r, "err", err)
		}
	case !autojoin && in:
		if _, attached := s.attachedShow(r, acct); attached {
			return // it leaves with its last client (SessionGone)
		}
		s.leaveUnheld(ctx, acct, r)
	}
}

// leaveUnheld takes acct out of r, which no client of it is attached to
// and no bookmark holds it in: an exit, as if its last client had said
// so.
func (s *Service) leaveUnheld(ctx context.Context, acct, r string) {
	_, _, _, err := s.roomDo(ctx, r, func(room.State) any { return room.Leave{Account: acct} })
	if err != nil && !errors.Is(err, room.ErrNotOccupant) && !errors.Is(err, room.ErrNotFound) {
		s.cfg.Log.Error("leaving a room no bookmark holds the account in", "room", r, "account", acct, "err", err)
	}
}
