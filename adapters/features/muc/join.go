package muc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// roomShow is the account's show in room r: its sessions' best, or
// Config.MUCDetachedShow (default xa) when no session is attached, since
// the account stays in the room (XEP-0045 has no "no client").
func (s *Service) roomShow(r, acct string) string {
	if show, ok := s.attachedShow(r, acct); ok {
		return show
	}
	return s.cfg.DetachedShow
}

// OccupantID is the XEP-0421 occupant id of an account in a room: stable,
// and not computable from the JIDs without the server's secret.
func (s *Service) OccupantID(r, acct string) string {
	m := hmac.New(sha256.New, s.occupantKey)
	m.Write([]byte("occupant-id\x00" + r + "\x00" + acct))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

func (s *Service) occupantIDXML(r, acct string) string {
	return "<occupant-id xmlns='" + nsOccupantID + "' id='" + s.OccupantID(r, acct) + "'/>"
}

// mucErrors maps room rule errors onto XEP-0045 stanza errors.
func mucError(err error) *stanza.Error {
	if errors.Is(err, errTooManyRooms) {
		// XEP-0045 §10.1.1: a user who may not create a room gets
		// not-allowed; the text says it is for now.
		return &stanza.Error{Type: "cancel", Cond: "not-allowed", Text: strings.TrimPrefix(err.Error(), "room: ")}
	}
	se, _ := stanza.ErrorFor(err)
	return se
}

// mucErrorReply answers e from `from` (the room or an occupant JID); an
// error that is no rule's is internal-server-error, its details logged.
func (c *conn) mucErrorReply(e *element, from string, err error, extra string) string {
	se := mucError(err)
	if se.Cond == "internal-server-error" {
		c.log.Error("room request failed", "err", err)
	}
	return fmt.Sprintf(`<%s type='error' id='%s' from='%s' to='%s'>%s%s</%s>`,
		e.XMLName.Local, stanza.Escape(e.Attr("id")), stanza.Escape(from), stanza.Escape(c.jid.String()), extra, se.XML(), e.XMLName.Local)
}

// occupantXML is an occupant's presence as viewer (an account) sees it.
func (s *Service) occupantXML(st room.State, o room.Occupant, viewer, to, typ string, codes []int, inner string) string {
	var b strings.Builder
	b.WriteString("<presence xmlns='" + nsClient + "' from='" + stanza.Escape(st.JID+"/"+o.Nick) + "' to='" + stanza.Escape(to) + "'")
	if typ != "" {
		b.WriteString(" type='" + typ + "'")
	}
	b.WriteString("><x xmlns='" + nsMUCUser + "'><item affiliation='" + string(st.Affiliation(o.Account)) + "' role='" + string(o.Role) + "'")
	if self := viewer == o.Account; self || st.Config.WhoisAnyone || st.Occupants[viewer].Role == room.Moderator {
		b.WriteString(" jid='" + stanza.Escape(o.Account) + "'")
	}
	b.WriteString(">" + inner + "</item>")
	for _, code := range codes {
		b.WriteString("<status code='" + strconv.Itoa(code) + "'/>")
	}
	b.WriteString("</x>" + s.occupantIDXML(st.JID, o.Account))
	if typ == "" {
		if o.Show != "" {
			b.WriteString("<show>" + stanza.Escape(o.Show) + "</show>")
		}
		if o.Status != "" {
			b.WriteString("<status>" + stanza.Escape(o.Status) + "</status>")
		}
	}
	b.WriteString("</presence>")
	return b.String()
}

// selfCodes are the status codes of an occupant's own presence.
func selfCodes(st room.State, extra ...int) []int {
	codes := []int{110}
	if st.Config.WhoisAnyone {
		codes = append(codes, 100)
	}
	codes = append(codes, 170) // the room is logged: every message is archived
	return append(codes, extra...)
}

// mucPresence handles a presence from this session to a room occupant JID.
func (c *conn) mucPresence(ctx context.Context, e *element, to jid.JID) error {
	s := c.srv
	r := to.Bare().String()
	acct := c.acct
	nick := to.Resourcepart()
	show := e.ChildText("show")
	status := e.ChildText("status")
	switch e.Attr("type") {
	case "unavailable":
		// An explicit exit from any client: the account leaves.
		_, _, _, err := s.roomDo(ctx, r, func(room.State) any { return room.Leave{Account: acct, Status: status} })
		if err != nil {
			if errors.Is(err, room.ErrNotOccupant) || errors.Is(err, room.ErrNotFound) {
				// Not in the room: still tell this client it is out.
				return c.write(fmt.Sprintf(`<presence from='%s' to='%s' type='unavailable'><x xmlns='%s'><item affiliation='none' role='none'/><status code='110'/></x></presence>`,
					stanza.Escape(to.String()), stanza.Escape(c.jid.String()), nsMUCUser))
			}
			return c.write(c.mucErrorReply(e, to.String(), err, ""))
		}
		return nil // the exit is told from the log (muc_publish.go)
	case "":
	case "error":
		if c.gone(e) {
			return c.leaveGone(ctx, r)
		}
		return nil
	default:
		return nil // probes and subscriptions to rooms end here
	}
	if nick == "" {
		return c.write(c.mucErrorReply(e, to.String(), fmt.Errorf("%w: no nick", room.ErrBadNick), ""))
	}
	if s.muc.attached(r, acct, c.sess) {
		// A status or nick change from an attached session.
		s.muc.attach(r, acct, c.sess, show)
		_, _, _, err := s.roomDo(ctx, r, func(st room.State) any {
			if o, ok := st.Occupants[acct]; ok && o.Nick != nick {
				return room.ChangeNick{Account: acct, Nick: nick}
			}
			return room.SetPresence{Account: acct, Show: s.roomShow(r, acct), Status: status}
		})
		if err != nil {
			return c.write(c.mucErrorReply(e, to.String(), err, ""))
		}
		return nil
	}
	if _, join := e.Named(nsMUC, "x"); !join {
		// A presence update of an occupant through a mirror, which is
		// not attached itself (its mirror is): a change of presence, not
		// a join, and no join's answer over the link.
		if st, err := s.cfg.Rooms.Get(ctx, r); err == nil {
			if o, ok := st.Occupants[acct]; ok && o.Via != "" && o.Nick == nick {
				_, _, _, err := s.roomDo(ctx, r, func(room.State) any { return room.SetPresence{Account: acct, Show: show, Status: status} })
				if err != nil {
					return c.write(c.mucErrorReply(e, to.String(), err, ""))
				}
				return nil
			}
		}
	}
	password := ""
	var hist history
	if x, ok := e.Named(nsMUC, "x"); ok {
		password = x.ChildText("password")
		hist = parseHistory(&x)
	}
	// An account past its room-creation rate may still join rooms that
	// exist; a join that would create one is refused (traffic.go).
	create := slices.Contains(s.cfg.Domains, c.jid.Domainpart())
	tooMany := s.creations.allow(acct)
	// Attached before the join is appended, so that no later event of the
	// room passes this session by (muc_attach.go). A user joining through
	// a mirror is not attached itself: the mirror is, once for all its
	// users, and tells them.
	attachAs, attached := acct, c.sess
	via := s.mirrorVia(c.jid, e)
	if via != "" {
		if ms := s.mirrorSession(via); ms != nil {
			attachAs, attached = mirrorKey(via), ms
		} else {
			via = ""
		}
	}
	attachShow := show
	newMirror := false
	if via != "" {
		attachShow = "" // a mirror's show is none: its users have their own
		newMirror = !s.muc.attached(r, attachAs, attached)
	}
	s.muc.attach(r, attachAs, attached, attachShow)
	_, st, out, err := s.roomJoin(ctx, r, room.Join{Account: acct, Nick: nick, Show: show, Status: status,
		Create: create && tooMany == nil, Locked: s.cfg.LockNewRooms, Via: via}, password)
	if err != nil {
		s.muc.cancel(r, attachAs, attached)
		if create && tooMany != nil && errors.Is(err, room.ErrNotFound) {
			err = tooMany
		}
		refusal := c.mucErrorReply(e, to.String(), err, "<x xmlns='"+nsMUC+"'/>")
		if via != "" {
			// ProtoXEP §3.2.2: through the mirror, to an escaped JID
			// that names the user (XEP-0106), for it alone.
			attached.Send(stanza.WithTo(refusal, stanza.EscapeLocal(c.jid.String())+"@"+via))
			return nil
		}
		return c.write(refusal)
	}
	if out.Created {
		s.creations.created(acct)
	}
	if newMirror {
		// A mirror new to the room gets its configuration and roster
		// first (ProtoXEP §3.2.1), the roster at the room's sequence.
		s.introduceMirror(st, attached)
	}
	me := st.Occupants[acct]
	// The new session gets the room: the others' presence, then its own,
	// then the history it asked for, then the subject (XEP-0045 §7.2.3).
	for other, o := range st.Occupants {
		if other != acct {
			c.deliver(s.occupantXML(st, o, acct, c.jid.String(), "", nil, ""), true)
		}
	}
	var codes []int
	if out.Created {
		codes = append(codes, 201)
	}
	if out.NickFixed {
		codes = append(codes, 210)
	}
	// The others learn of the join from the log; this session from here,
	// with the id of its join presence (XEP-0045 §7.2.3).
	c.deliver(stanza.WithID(s.occupantXML(st, me, acct, c.jid.String(), "", selfCodes(st, codes...), ""), e.Attr("id")), true)
	if !out.Already && s.holds(ctx, acct, r) {
		// A bookmark without autojoin is the user's choice, kept: the
		// account is in only while a client is (SessionGone).
		s.setAutojoin(ctx, acct, r, me.Nick, true)
	}
	s.sendHistory(ctx, c, st, hist)
	subject := "<subject/>"
	if st.Subject != "" {
		subject = "<subject>" + stanza.Escape(st.Subject) + "</subject>"
	}
	from := st.JID
	if st.SubjectNick != "" {
		from += "/" + st.SubjectNick
	}
	c.deliver(fmt.Sprintf(`<message xmlns='%s' type='groupchat' from='%s' to='%s' id='%s'>%s</message>`,
		nsClient, stanza.Escape(from), stanza.Escape(c.jid.String()), stanza.NewID(), subject), true)
	if !s.muc.ready(r, attachAs, attached, st.Version) {
		c.log.Warn("room join: the room said more than a joining session may hold back", "room", r, "max_pending", maxPending)
		return &stanza.StreamError{Cond: "resource-constraint", Text: "the room was too busy while this session joined it"}
	}
	if !out.Already {
		return nil
	}
	// The account's presence in the room may have changed with this
	// session; one through a mirror has the presence it sent.
	roomShow := s.roomShow(r, acct)
	if via != "" {
		roomShow = show
	}
	s.roomDo(ctx, r, func(room.State) any {
		return room.SetPresence{Account: acct, Show: roomShow, Status: status}
	})
	return nil
}

// history is what a joining client asked of the discussion history
// (XEP-0045 §7.2.15); -1 and the zero time: not given.
type history struct {
	maxStanzas, maxChars int
	since                time.Time
}

func parseHistory(x *element) history {
	h := history{maxStanzas: -1, maxChars: -1}
	he, ok := x.Named(nsMUC, "history")
	if !ok {
		return h
	}
	if n, err := strconv.Atoi(he.Attr("maxstanzas")); err == nil && n >= 0 {
		h.maxStanzas = n
	}
	if n, err := strconv.Atoi(he.Attr("maxchars")); err == nil && n >= 0 {
		h.maxChars = n
	}
	if n, err := strconv.Atoi(he.Attr("seconds")); err == nil && n >= 0 {
		// More seconds than a Duration holds would wrap into the future.
		h.since = time.Now().Add(-time.Duration(min(n, math.MaxInt64/int(time.Second))) * time.Second)
	}
	if t, err := time.Parse(time.RFC3339Nano, he.Attr("since")); err == nil && t.After(h.since) {
		h.since = t
	}
	return h
}

// sendHistory sends the last messages of the room to a joining session,
// from the room's archive, with delay stamps (XEP-0045 §7.2.15).
func (s *Service) sendHistory(ctx context.Context, c *conn, st room.State, h history) {
	n := st.Config.HistoryLength
	if h.maxStanzas >= 0 && h.maxStanzas < n {
		n = h.maxStanzas
	}
	if n <= 0 || s.cfg.Archive == nil {
		return
	}
	page, err := s.cfg.Archive.Query(ctx, st.JID, archive.Query{Last: true, Max: min(n, archive.MaxPage), Groupchat: true, Start: h.since,
		MaxBytes: s.cfg.HistoryBytes})
	if err != nil {
		c.log.Error("room history", "room", st.JID, "err", err)
		return
	}
	if h.maxChars >= 0 {
		// maxchars counts whole stanzas, newest first (§7.2.15).
		total, first := 0, len(page.Entries)
		for i := len(page.Entries) - 1; i >= 0; i-- {
			if total += len(page.Entries[i].Stanza); total > h.maxChars {
				break
			}
			first = i
		}
		page.Entries = page.Entries[first:]
	}
	for _, en := range page.Entries {
		m := stanza.InsertChild(en.Stanza, "<delay xmlns='"+nsDelay+"' from='"+stanza.Escape(st.JID)+"' stamp='"+stanza.Stamp(en.At)+"'/>")
		c.deliver(stanza.WithTo(stanza.InsertChild(m, stanza.IDElement(st.JID, en.ID)), c.jid.String()), true)
	}
}

// mucMessage handles a message from this session to a room or occupant.
func (c *conn) mucMessage(ctx context.Context, e *element, to jid.JID) error {
	s := c.srv
	r := to.Bare().String()
	acct := c.acct
	typ := e.Attr("type")
	if typ == "error" {
		if c.gone(e) {
			return c.leaveGone(ctx, r)
		}
		if to.Resourcepart() == "" {
			return nil
		}
	}
	if to.Resourcepart() != "" {
		return c.mucPrivate(ctx, e, to)
	}
	if typ != "groupchat" {
		if inv, ok := e.Named(nsMUCUser, "x"); ok {
			return c.mucInvite(ctx, e, to, &inv)
		}
		if x, ok := e.Named(form.NS, "x"); ok {
			f, err := form.Parse(x)
			if err != nil {
				return c.write(c.mucErrorReply(e, r, stanza.Errorf("bad-request", err.Error()), ""))
			}
			if f.FormType == nsMUCRequest {
				return c.mucVoice(ctx, e, r, f)
			}
		}
		return c.write(c.mucErrorReply(e, r, fmt.Errorf("%w: messages to a room are of type groupchat", room.ErrInvalid), ""))
	}
	m := stanza.ScanMessage(e)
	if subj, ok := e.Named(nsClient, "subject"); ok && !m.Body {
		if _, _, _, err := s.roomDo(ctx, r, func(room.State) any {
			return room.SetSubject{Account: acct, Subject: subj.Text()}
		}); err != nil {
			return c.write(c.mucErrorReply(e, r, err, ""))
		}
		return nil
	}
	id := s.cfg.Rooms.NewID()
	retracts := s.retractsOf(ctx, r, e)
	_, _, _, err := s.roomDo(ctx, r, func(st room.State) any {
		o := st.Occupants[acct]
		stripped := *e
		stripped.Inner = append(slices.Clip(m.Inner), s.occupantIDXML(r, acct)...)
		wire := stanza.Restamp(&stripped, r+"/"+o.Nick)
		return room.Post{Account: acct, ID: id, Stanza: stanza.WithoutTo(wire), Reserialized: true, Retracts: retracts}
	})
	if err != nil {
		return c.write(c.mucErrorReply(e, r, err, ""))
	}
	return nil // the room's sessions, this one too, get it from the log
}

// mucPrivate forwards a private message to an occupant: every attached
// session of its account gets it, from the sender's occupant JID.
func (c *conn) mucPrivate(ctx context.Context, e *element, to jid.JID) error {
	s := c.srv
	r := to.Bare().String()
	acct := c.acct
	st, err := s.cfg.Rooms.Get(ctx, r)
	if err != nil {
		return c.write(c.mucErrorReply(e, to.String(), err, ""))
	}
	me, in := st.Occupants[acct]
	target, found := st.ByNick(to.Resourcepart())
	switch {
	case e.Attr("type") == "groupchat":
		// XEP-0045 §7.5: a private message of type groupchat would show
		// in the recipient's client as said in the room (a forged subject,
		// say): refused.
		return c.write(c.mucErrorReply(e, to.String(), fmt.Errorf("%w: a private message is not of type groupchat", room.ErrInvalid), ""))
	case !in:
		return c.write(c.mucErrorReply(e, to.String(), room.ErrNotOccupant, ""))
	case !found:
		return c.write(c.mucErrorReply(e, to.String(), room.ErrItemNotFound, ""))
	}
	m := stanza.ScanMessage(e)
	stripped := *e
	stripped.Inner = append(slices.Clip(m.Inner), ("<x xmlns='" + nsMUCUser + "'/>" + s.occupantIDXML(r, acct))...)
	wire := stanza.Restamp(&stripped, r+"/"+me.Nick)
	for _, t := range s.muc.sessions(r, target.Account) {
		t.Deliver(stanza.WithTo(wire, t.JID().String()), m.Body)
	}
	// The sender's other sessions in the room see what it sent.
	for _, t := range s.muc.sessions(r, acct) {
		if t != c.sess {
			t.Deliver(stanza.Carbon("sent", acct, t.JID().String(), e.Attr("type"), stanza.WithTo(stanza.Restamp(&stripped, c.jid.String()), to.String())), m.Body)
		}
	}
	return nil
}

// mucInvite forwards a mediated invitation (XEP-0045 §7.8.2).
func (c *conn) mucInvite(ctx context.Context, e *element, to jid.JID, x *element) error {
	s := c.srv
	r := to.Bare().String()
	acct := c.acct
	inv, ok := x.Named(nsMUCUser, "invite")
	invitee, err := jid.Parse(inv.Attr("to"))
	if !ok || err != nil {
		return c.write(c.mucErrorReply(e, r, fmt.Errorf("%w: an invitation needs an invitee", room.ErrInvalid), ""))
	}
	_, st, _, err := s.roomDo(ctx, r, func(room.State) any { return room.Invite{By: acct, Invitee: invitee.Bare().String()} })
	if err != nil {
		return c.write(c.mucErrorReply(e, r, err, ""))
	}
	reason := ""
	if rs := inv.ChildText("reason"); rs != "" {
		reason = "<reason>" + stanza.Escape(rs) + "</reason>"
	}
	// The room keeps only a hash of its password: a password in the
	// invitation is one the inviter put there.
	password := ""
	if p := x.ChildText("password"); p != "" && st.Config.PasswordHash != "" {
		password = "<password>" + stanza.Escape(p) + "</password>"
	}
	wire := fmt.Sprintf(`<message xmlns='%s' from='%s' to='%%s'><x xmlns='%s'><invite from='%s'>%s</invite>%s</x></message>`,
		nsClient, stanza.Escape(r), nsMUCUser, stanza.Escape(c.jid.String()), reason, password)
	for _, t := range s.host.Sessions(invitee) {
		t.Deliver(fmt.Sprintf(wire, stanza.Escape(t.JID().String())), true)
	}
	return nil
}

// roomDo runs a room command and returns the room before and after it.
// What its events did reaches the room's sessions from the log; here,
// only what follows from them for the account that caused them.
func (s *Service) roomDo(ctx context.Context, r string, cmd func(room.State) any) (before, after room.State, out room.Outcome, err error) {
	out, after, err = s.cfg.Rooms.Do(ctx, r, func(st room.State) any {
		before = st // the state of the run that counted: Do may decide again
		return cmd(st)
	})
	if err == nil {
		s.bookmarkRooms(ctx, r, out.Events)
	}
	return before, after, out, err
}

// bookmarkRooms keeps the accounts' bookmarks (XEP-0402) in step with
// what events did to their occupancy: autojoin off after an exit, the
// new nick after a change. It runs in the process that decided the
// command, once, not in every process that sees the events.
func (s *Service) bookmarkRooms(ctx context.Context, r string, evs []event.Envelope) {
	for _, e := range evs {
		switch e.Type {
		case room.TypeLeft:
			// An idle account keeps its bookmark: its client joins again
			// when it comes back.
			var d room.Left
			if e.Decode(room.Schema, &d) == nil && d.Cause != "idle" {
				s.setAutojoin(ctx, d.Account, r, "", false)
			}
		case room.TypeNickChanged:
			var d room.NickChanged
			if e.Decode(room.Schema, &d) == nil {
				s.setAutojoin(ctx, d.Account, r, d.Nick, true)
			}
		}
	}
}

// setAutojoin keeps acct's bookmark of room r in step, if bookmarks are
// kept (acct is a bare JID: an account's).
func (s *Service) setAutojoin(ctx context.Context, acct, r, nick string, autojoin bool) {
	// An occupant from another server keeps its bookmarks there.
	if s.cfg.Bookmarks != nil && s.local(acct) {
		s.cfg.Bookmarks.SetAutojoin(ctx, acct, r, nick, autojoin)
	}
}

// holds reports whether acct stays in room r with no client attached
// (Bookmarks.Holds); an account without bookmarks here always does.
func (s *Service) holds(ctx context.Context, acct, r string) bool {
	return s.cfg.Bookmarks == nil || !s.local(acct) || s.cfg.Bookmarks.Holds(ctx, acct, r)
}

// goneConditions are the errors that say an occupant is not there any
// more (its server bounced what the room sent it).
var goneConditions = map[string]bool{
	"gone": true, "item-not-found": true, "recipient-unavailable": true, "redirect": true, "remote-server-not-found": true,
	"remote-server-timeout": true, "service-unavailable": true, "jid-malformed": true,
}

// gone reports whether e, an error from this session's side, says that
// an occupant from another server is gone. A local client's errors never
// do: the core tells the room when its sessions end.
func (c *conn) gone(e *element) bool {
	return c.acct != c.jid.Bare().String() && goneError(e)
}

// goneError reports whether error stanza e has one of goneConditions.
func goneError(e *element) bool {
	return goneConditions[stanza.ErrorCondition(e)]
}

// leaveGone removes an occupant from another server whose server
// answered the room with an error that says it is gone: the others see it
// leave with status 333 (XEP-0045, "Service removes user because of error
// response"), as Prosody removes such "ghosts" too.
func (c *conn) leaveGone(ctx context.Context, r string) error {
	_, _, _, err := c.srv.roomDo(ctx, r, func(room.State) any { return room.Leave{Account: c.acct, Cause: "error"} })
	if err != nil && !errors.Is(err, room.ErrNotOccupant) && !errors.Is(err, room.ErrNotFound) {
		c.log.Error("removing an occupant whose server answered with an error", "room", r, "err", err)
	}
	return nil
}
