package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/adapters/stanza/form"
	"annals.im/annals/domain/room"
	"annals.im/annals/domain/vcard"
)

// mucIQ answers an IQ to the MUC service, a room or an occupant.
func (c *conn) mucIQ(ctx context.Context, e *element, q element, to jid.JID) error {
	s := c.srv
	typ := e.Attr("type")
	acct := c.acct
	reply := func(payload string) error {
		return c.write(fmt.Sprintf(`<iq type='result' id='%s' from='%s' to='%s'>%s</iq>`,
			stanza.Escape(e.Attr("id")), stanza.Escape(to.String()), stanza.Escape(c.jid.String()), payload))
	}
	fail := func(err error) error { return c.write(c.mucErrorReply(e, to.String(), err, "")) }
	switch {
	case to.Localpart() == "": // the service itself
		switch {
		case q.XMLName.Space == nsDisco && typ == "get":
			return reply(s.serviceInfo())
		case q.XMLName.Space == nsPing && typ == "get" && s.isMirror(c.jid):
			// A mirror's keepalive: the answer says which run of this
			// service it is, so that a mirror learns of a restart however
			// short (its users were swept, docs/dmuc.md).
			// NOTSPEC(XEP-0199 §4): a ping's result is empty; the ProtoXEP
			// has no keepalive. A client that pings gets the empty one.
			return reply("<dmuc xmlns='" + nsDMUC0 + "' boot='" + s.boot + "'/>")
		case q.XMLName.Space == nsPing && typ == "get":
			return reply("") // XEP-0199
		case q.XMLName.Space == nsItems && typ == "get":
			list, err := s.cfg.Rooms.Public(ctx)
			if err != nil {
				c.log.Error("listing rooms", "err", err)
				return c.write(c.errorReply(e, "wait", "internal-server-error"))
			}
			var b strings.Builder
			b.WriteString("<query xmlns='" + nsItems + "'>")
			for _, r := range list {
				b.WriteString("<item jid='" + stanza.Escape(r.JID) + "' name='" + stanza.Escape(cmpOr(r.Name, r.JID)) + "'/>")
			}
			b.WriteString("</query>")
			return reply(b.String())
		}
	case to.Resourcepart() != "": // an occupant
		st, err := s.cfg.Rooms.Get(ctx, to.Bare().String())
		if err != nil {
			return fail(err)
		}
		me, in := st.Occupants[acct]
		if q.XMLName.Space == nsPing && typ == "get" && in && me.Nick == to.Resourcepart() {
			// XEP-0410 self-ping: is this client still in the room?
			if s.muc.attached(st.JID, acct, c.sess) {
				return reply("")
			}
			return fail(room.ErrNotOccupant)
		}
		return c.forwardOccupantIQ(e, st, to)
	default: // a room
		st, err := s.cfg.Rooms.Get(ctx, to.String())
		if err != nil {
			return fail(err)
		}
		if !st.Exists {
			return fail(room.ErrNotFound)
		}
		switch {
		case q.XMLName.Space == nsDisco && typ == "get":
			return reply(roomInfo(st, acct))
		case q.XMLName.Space == nsItems && typ == "get":
			return reply("<query xmlns='" + nsItems + "'/>") // semi-anonymous: occupants are not listed
		case (q.XMLName == xml.Name{Space: nsModerate1, Local: "moderate"} || q.XMLName == xml.Name{Space: nsFasten, Local: "apply-to"}) && typ == "set":
			return c.moderate(ctx, e, q, st, reply, fail)
		case q.XMLName == xml.Name{Space: nsDMUC0, Local: "room"} && typ == "get":
			return c.resendToMirror(ctx, e, q, st, reply, fail)
		case q.XMLName.Space == nsMUCAdmin:
			return c.mucAdmin(ctx, e, q, st, reply, fail)
		case q.XMLName.Space == nsMUCOwner:
			return c.mucOwner(ctx, e, q, st, reply, fail)
		case q.XMLName.Space == vcard.NS:
			return c.roomVCard(ctx, e, q, st, reply, fail)
		case q.XMLName.Space == nsMAM && q.XMLName.Local == "query" && s.cfg.RoomArchive != nil:
			// Only an open, public room without a password is readable
			// from outside (room.State.Insider).
			if !st.Insider(acct) {
				return fail(room.ErrForbidden)
			}
			return s.cfg.RoomArchive.ServeRoom(ctx, c.sess, e, q, st.JID)
		}
	}
	return c.write(c.errorReplyText(e, "cancel", "feature-not-implemented", "not offered by the chat service"))
}

// roomInfo describes a room in disco#info (XEP-0045 §6.4) to viewer.
//
// The muc#roominfo fields are optional (§6.4: "MAY"). What is said inside
// the room (its subject) and how busy it is (the occupant count) is given
// only to those who may read the room from outside (room.State.Insider);
// a members-only room's description is for its members too. The name and
// features stay: a client needs them to know how to join (password,
// members-only), and a public room's name is listed in disco#items anyway.
func roomInfo(st room.State, viewer string) string {
	var b strings.Builder
	b.WriteString("<query xmlns='" + nsDisco + "'><identity category='conference' type='text' name='" + stanza.Escape(cmpOr(st.Config.Name, localOf(st.JID))) + "'/>")
	feature := func(on bool, yes, no string) {
		if on {
			b.WriteString("<feature var='" + yes + "'/>")
		} else {
			b.WriteString("<feature var='" + no + "'/>")
		}
	}
	for _, f := range []string{nsMUC, nsMAM, nsStanzaID, nsOccupantID, nsModerate0, nsModerate1, nsRetract1, nsRetract1 + "#tombstone", vcard.NS, "muc_unsecured"} {
		if f == "muc_unsecured" && st.Config.PasswordHash != "" {
			f = "muc_passwordprotected"
		}
		b.WriteString("<feature var='" + f + "'/>")
	}
	feature(st.Config.Persistent, "muc_persistent", "muc_temporary")
	feature(st.Config.Public, "muc_public", "muc_hidden")
	feature(st.Config.MembersOnly, "muc_membersonly", "muc_open")
	feature(st.Config.Moderated, "muc_moderated", "muc_unmoderated")
	feature(st.Config.WhoisAnyone, "muc_nonanonymous", "muc_semianonymous")
	b.WriteString("<x xmlns='" + nsData + "' type='result'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roominfo</value></field>")
	insider := st.Insider(viewer)
	if insider || !st.Config.MembersOnly {
		b.WriteString("<field var='muc#roominfo_description'><value>" + stanza.Escape(st.Config.Description) + "</value></field>")
	}
	if insider {
		b.WriteString("<field var='muc#roominfo_occupants'><value>" + strconv.Itoa(len(st.Occupants)) + "</value></field>")
		b.WriteString("<field var='muc#roominfo_subject'><value>" + stanza.Escape(st.Subject) + "</value></field>")
	}
	b.WriteString(avatarField(st, viewer))
	b.WriteString("</x></query>")
	return b.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mucAdmin handles muc#admin: role and affiliation changes and lists.
func (c *conn) mucAdmin(ctx context.Context, e *element, q element, st room.State, reply func(string) error, fail func(error) error) error {
	s := c.srv
	acct := c.acct
	items := []element{}
	for _, ch := range q.Children() {
		if ch.XMLName.Local == "item" {
			items = append(items, ch)
		}
	}
	if len(items) == 0 {
		return fail(fmt.Errorf("%w: no item", room.ErrInvalid))
	}
	if e.Attr("type") == "get" {
		it := items[0]
		var b strings.Builder
		b.WriteString("<query xmlns='" + nsMUCAdmin + "'>")
		switch {
		case it.Attr("affiliation") != "":
			a, ok := room.ParseAffiliation(it.Attr("affiliation"))
			mine := st.Affiliation(acct)
			if !ok || a == room.None {
				return fail(fmt.Errorf("%w: affiliation %q", room.ErrInvalid, it.Attr("affiliation")))
			}
			if mine != room.Owner && mine != room.Admin && !(a == room.Member && mine == room.Member) {
				return fail(room.ErrForbidden)
			}
			js := make([]string, 0)
			for j, x := range st.Affiliations {
				if x == a {
					js = append(js, j)
				}
			}
			slices.Sort(js)
			for _, j := range js {
				b.WriteString("<item affiliation='" + string(a) + "' jid='" + stanza.Escape(j) + "'/>")
			}
		case it.Attr("role") != "":
			r, ok := room.ParseRole(it.Attr("role"))
			if !ok {
				return fail(fmt.Errorf("%w: role %q", room.ErrInvalid, it.Attr("role")))
			}
			if st.Occupants[acct].Role != room.Moderator {
				return fail(room.ErrForbidden)
			}
			for _, o := range st.Occupants {
				if o.Role == r {
					b.WriteString("<item role='" + string(r) + "' nick='" + stanza.Escape(o.Nick) + "' jid='" + stanza.Escape(o.Account) +
						"' affiliation='" + string(st.Affiliation(o.Account)) + "'/>")
				}
			}
		default:
			return fail(fmt.Errorf("%w: ask for a role or an affiliation", room.ErrInvalid))
		}
		b.WriteString("</query>")
		return reply(b.String())
	}
	// All items of a request apply together or not at all (§9.5).
	var batch room.Batch
	for _, it := range items {
		reason := it.ChildText("reason")
		switch {
		case it.Attr("role") != "":
			r, ok := room.ParseRole(it.Attr("role"))
			nick := it.Attr("nick")
			if !ok || nick == "" {
				return fail(fmt.Errorf("%w: a role change needs a role and a nick", room.ErrInvalid))
			}
			batch = append(batch, room.SetRole{By: acct, Nick: nick, Role: r, Reason: reason})
		case it.Attr("affiliation") != "":
			a, ok := room.ParseAffiliation(it.Attr("affiliation"))
			j, err := jid.Parse(it.Attr("jid"))
			if !ok || err != nil || it.Attr("jid") == "" {
				return fail(fmt.Errorf("%w: an affiliation change needs an affiliation and a JID", room.ErrInvalid))
			}
			batch = append(batch, room.SetAffiliation{By: acct, JID: j.Bare().String(), Affiliation: a, Reason: reason})
		default:
			return fail(fmt.Errorf("%w: an item needs a role or an affiliation", room.ErrInvalid))
		}
	}
	if _, _, _, err := s.roomDo(ctx, st.JID, func(room.State) any { return batch }); err != nil {
		return fail(err)
	}
	return reply("")
}

// The configuration form (muc#roomconfig, XEP-0045 §15.5.3).
const (
	nsRoomConfig   = "http://jabber.org/protocol/muc#roomconfig"
	cfgName        = "muc#roomconfig_roomname"
	cfgDesc        = "muc#roomconfig_roomdesc"
	cfgPersistent  = "muc#roomconfig_persistentroom"
	cfgPublic      = "muc#roomconfig_publicroom"
	cfgMembersOnly = "muc#roomconfig_membersonly"
	cfgModerated   = "muc#roomconfig_moderatedroom"
	cfgPWProtected = "muc#roomconfig_passwordprotectedroom"
	cfgSecret      = "muc#roomconfig_roomsecret"
	cfgMaxUsers    = "muc#roomconfig_maxusers"
	cfgWhois       = "muc#roomconfig_whois"
	cfgSubject     = "muc#roomconfig_changesubject"
	cfgInvites     = "muc#roomconfig_allowinvites"
	cfgHistory     = "muc#maxhistoryfetch"
)

func configForm(cfg room.Config) string {
	var b strings.Builder
	b.WriteString("<x xmlns='" + nsData + "' type='form'><title>Room configuration</title>")
	b.WriteString("<field var='FORM_TYPE' type='hidden'><value>" + nsRoomConfig + "</value></field>")
	field := func(v, typ, label, value string) {
		b.WriteString("<field var='" + v + "' type='" + typ + "' label='" + stanza.Escape(label) + "'><value>" + stanza.Escape(value) + "</value></field>")
	}
	boolean := func(x bool) string {
		if x {
			return "1"
		}
		return "0"
	}
	field(cfgName, "text-single", "Name", cfg.Name)
	field(cfgDesc, "text-single", "Description", cfg.Description)
	field(cfgPersistent, "boolean", "Persistent", boolean(cfg.Persistent))
	field(cfgPublic, "boolean", "Public", boolean(cfg.Public))
	field(cfgMembersOnly, "boolean", "Members only", boolean(cfg.MembersOnly))
	field(cfgModerated, "boolean", "Moderated", boolean(cfg.Moderated))
	field(cfgPWProtected, "boolean", "Password protected", boolean(cfg.PasswordHash != ""))
	// The password is never shown: the room keeps only its hash. An empty
	// secret with password protection on keeps the current password.
	field(cfgSecret, "text-private", "Password", "")
	field(cfgMaxUsers, "text-single", "Maximum occupants (0: no limit)", strconv.Itoa(cfg.MaxOccupants))
	whois := "moderators"
	if cfg.WhoisAnyone {
		whois = "anyone"
	}
	b.WriteString("<field var='" + cfgWhois + "' type='list-single' label='Who may see real JIDs'><value>" + whois +
		"</value><option label='Moderators'><value>moderators</value></option><option label='Anyone'><value>anyone</value></option></field>")
	field(cfgSubject, "boolean", "Occupants may change the subject", boolean(cfg.ChangeSubject))
	field(cfgInvites, "boolean", "Occupants may invite", boolean(cfg.AllowInvites))
	field(cfgHistory, "text-single", "Messages sent on join", strconv.Itoa(cfg.HistoryLength))
	b.WriteString("</x>")
	return b.String()
}

// parseConfig applies a submitted configuration form to cfg; secretHash
// is the verifier of the form's password (hashRoomSecret).
func parseConfig(cfg room.Config, f *form.Form, secretHash string) (room.Config, error) {
	// The empty form that makes an instant room (XEP-0045 §10.1.2) has no
	// FORM_TYPE; a submission with fields but none is taken as
	// muc#roomconfig too, as it always was here.
	if f.FormType != "" && f.FormType != nsRoomConfig {
		return cfg, fmt.Errorf("%w: FORM_TYPE %q", room.ErrInvalid, f.FormType)
	}
	secret, protected := "", cfg.PasswordHash != ""
	for _, fl := range f.Fields {
		v := fl.Value()
		boolean := func() (bool, error) {
			b, err := fl.Bool()
			if err != nil {
				return false, fmt.Errorf("%w: %v", room.ErrInvalid, err)
			}
			return b, nil
		}
		number := func() (int, error) {
			n, err := strconv.Atoi(cmpOr(v, "0"))
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%w: %s: %q is not a count", room.ErrInvalid, fl.Var, v)
			}
			return n, nil
		}
		var err error
		switch fl.Var {
		case cfgName:
			cfg.Name = v
		case cfgDesc:
			cfg.Description = v
		case cfgPersistent:
			cfg.Persistent, err = boolean()
		case cfgPublic:
			cfg.Public, err = boolean()
		case cfgMembersOnly:
			cfg.MembersOnly, err = boolean()
		case cfgModerated:
			cfg.Moderated, err = boolean()
		case cfgPWProtected:
			protected, err = boolean()
		case cfgSecret:
			secret = v
		case cfgMaxUsers:
			cfg.MaxOccupants, err = number()
		case cfgWhois:
			switch v {
			case "anyone":
				cfg.WhoisAnyone = true
			case "moderators", "":
				cfg.WhoisAnyone = false
			default:
				err = fmt.Errorf("%w: whois %q", room.ErrInvalid, v)
			}
		case cfgSubject:
			cfg.ChangeSubject, err = boolean()
		case cfgInvites:
			cfg.AllowInvites, err = boolean()
		case cfgHistory, "muc#roomconfig_historylength":
			cfg.HistoryLength, err = number()
		default:
			err = fmt.Errorf("%w: unknown field %q", room.ErrInvalid, fl.Var)
		}
		if err != nil {
			return cfg, err
		}
	}
	switch {
	case !protected:
		cfg.PasswordHash = ""
	case secret != "":
		cfg.PasswordHash = secretHash
	case cfg.PasswordHash == "":
		return cfg, fmt.Errorf("%w: password protection without a password", room.ErrInvalid)
	}
	return cfg, nil
}

// mucOwner handles muc#owner: the configuration form and destruction.
func (c *conn) mucOwner(ctx context.Context, e *element, q element, st room.State, reply func(string) error, fail func(error) error) error {
	s := c.srv
	acct := c.acct
	if st.Affiliation(acct) != room.Owner {
		return fail(room.ErrForbidden)
	}
	if e.Attr("type") == "get" {
		return reply("<query xmlns='" + nsMUCOwner + "'>" + configForm(st.Config) + "</query>")
	}
	if d, ok := q.Named(nsMUCOwner, "destroy"); ok {
		if _, _, _, err := s.roomDo(ctx, st.JID, func(room.State) any {
			return room.Destroy{By: acct, Reason: d.ChildText("reason"), Alternate: d.Attr("jid")}
		}); err != nil {
			return fail(err)
		}
		return reply("")
	}
	x, ok := q.Named(nsData, "x")
	if !ok {
		return fail(fmt.Errorf("%w: no form", room.ErrInvalid))
	}
	// The form is read once, here: the command below may be decided more
	// than once.
	f, err := form.Parse(x)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", room.ErrInvalid, err))
	}
	var cmd func(room.State) any
	switch f.Type {
	case form.TypeCancel:
		if !st.Locked {
			return reply("")
		}
		// Cancelling the first configuration abandons the new room (§10.1.3).
		cmd = func(room.State) any { return room.Destroy{By: acct, Reason: "configuration cancelled"} }
	case form.TypeSubmit:
		secretHash, err := hashRoomSecret(f)
		if err != nil {
			return fail(err)
		}
		cmd = func(cur room.State) any {
			cfg, err := parseConfig(cur.Config, f, secretHash)
			if err != nil {
				return err
			}
			return room.Configure{By: acct, Config: cfg}
		}
	default:
		return fail(fmt.Errorf("%w: form type %q", room.ErrInvalid, f.Type))
	}
	if _, _, _, err := s.roomDo(ctx, st.JID, cmd); err != nil {
		return fail(err)
	}
	return reply("") // status 104 and the unlocking reach the room from the log
}

// An IQ to an occupant is forwarded to one attached session of its
// account, under an id of the service's, and the answer goes back to the
// asker from the occupant's room JID (XEP-0045 §7.4 for IQs).
type forwardedIQ struct {
	asker   *conn
	id      string // the asker's
	room    string
	target  string // the account asked
	nick    string // its nick when asked
	expires time.Time
}

// maxForwarded bounds the IQs awaiting an answer; past it the oldest
// bookkeeping is dropped (their answers then go nowhere).
const maxForwarded = 10000

func (c *conn) forwardOccupantIQ(e *element, st room.State, to jid.JID) error {
	s := c.srv
	acct := c.acct
	me, in := st.Occupants[acct]
	target, found := st.ByNick(to.Resourcepart())
	switch {
	case !in:
		return c.write(c.mucErrorReply(e, to.String(), room.ErrNotOccupant, ""))
	case !found:
		return c.write(c.mucErrorReply(e, to.String(), room.ErrItemNotFound, ""))
	}
	sessions := s.muc.sessions(st.JID, target.Account)
	if len(sessions) == 0 {
		// The account is in the room but none of its clients is.
		return c.write(c.errorReplyText(e, "wait", "recipient-unavailable", "no client of this occupant is in the room now"))
	}
	fid := "muc-" + stanza.NewID()
	s.fwdMu.Lock()
	if len(s.forwarded) >= maxForwarded {
		now := time.Now()
		for k, f := range s.forwarded {
			if now.After(f.expires) {
				delete(s.forwarded, k)
			}
		}
		if len(s.forwarded) >= maxForwarded {
			s.forwarded = make(map[string]forwardedIQ)
		}
	}
	s.forwarded[fid] = forwardedIQ{asker: c, id: e.Attr("id"), room: st.JID, target: target.Account, nick: target.Nick,
		expires: time.Now().Add(5 * time.Minute)}
	s.fwdMu.Unlock()
	t := sessions[0]
	fwd := withAttr(e, "id", fid)
	t.Deliver(stanza.WithTo(stanza.Restamp(&fwd, st.JID+"/"+me.Nick), t.JID().String()), true)
	return nil
}

// occupantIQReply takes a client's answer to a forwarded IQ back to the
// asker; false when the answer is to nothing the service forwarded.
func (c *conn) occupantIQReply(e *element) bool {
	s := c.srv
	s.fwdMu.Lock()
	f, ok := s.forwarded[e.Attr("id")]
	if ok && f.target == c.acct {
		delete(s.forwarded, e.Attr("id"))
	}
	s.fwdMu.Unlock()
	if !ok || f.target != c.acct {
		return false
	}
	back := withAttr(e, "id", f.id)
	f.asker.deliver(stanza.WithTo(stanza.Restamp(&back, f.room+"/"+f.nick), f.asker.jid.String()), true)
	return true
}

// withAttr returns a copy of e with attribute name set to value.
func withAttr(e *element, name, value string) element {
	out := *e
	out.Attrs = make([]xml.Attr, 0, len(e.Attrs)+1)
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == name {
			continue
		}
		out.Attrs = append(out.Attrs, a)
	}
	out.Attrs = append(out.Attrs, xml.Attr{Name: xml.Name{Local: name}, Value: value})
	return out
}

// serviceInfo is the service's disco#info: MUC, vCards on rooms
// (XEP-0486 §3.1), and DMUC3 when some server's mirrors are trusted
// (docs/dmuc.md).
func (s *Service) serviceInfo() string {
	dmuc := ""
	if len(s.cfg.MirrorTrust) > 0 {
		dmuc = "<feature var='" + nsDMUC + "'/>"
	}
	return "<query xmlns='" + nsDisco + "'><identity category='conference' type='text' name='Chatrooms'/>" +
		"<feature var='" + nsMUC + "'/><feature var='" + nsDisco + "'/><feature var='" + nsItems + "'/><feature var='" + vcard.NS + "'/>" + dmuc + "</query>"
}

// localOf is a room's name when it was given none: its JID's local part,
// as clients show a room (Prosody does the same), not the whole JID.
func localOf(room string) string {
	local, _, _ := strings.Cut(room, "@")
	return local
}
