package muc

// DMUC3 masters (issue 13, docs/dmuc.md): a room tells each mirror its
// occupants joined through once per event, not once per occupant, with
// the event's version as the mirror's sequence number.

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/room"
)

// mirrorPrefix begins the attachment key of a mirror: the room's
// attachments hold it beside the accounts' (no JID has a space).
const mirrorPrefix = "mirror "

func mirrorKey(via string) string { return mirrorPrefix + via }

// seqXML is the sequence element a master's stanza to a mirror carries:
// the room event's version, and which of its stanzas this is when it
// takes several (docs/dmuc.md, "Sequence").
func seqXML(version uint64, part, parts int) string {
	x := "<dmuc xmlns='" + nsDMUC0 + "' seq='" + strconv.FormatUint(version, 10) + "'"
	if part > 0 {
		x += " part='" + strconv.Itoa(part) + "'"
	}
	if part < parts-1 {
		x += " more='true'"
	}
	return x + "/>"
}

// mirrorStanza is a stanza a mirror is told of a room event.
type mirrorStanza struct {
	xml    string
	urgent bool
}

// forMirror renders what the mirror via is told of event e, which made
// before into after: what anyone in the room sees, with the real JIDs of
// the mirror's own users (it adds what only its own user may see, status
// 110, itself), addressed to the mirror, without the sequence. The live
// path (publishMirrors) and a resend (resendToMirror) both render with
// it, so a mirror that asks again gets the same.
func (s *Service) forMirror(before, after room.State, e event.Envelope, via string) []mirrorStanza {
	if out := s.renderForMirror(before, after, e, via); len(out) > 0 {
		return out
	}
	// An event with nothing for the mirror's users (the affiliation of
	// someone not in the room, say) still takes a sequence: without it
	// the mirror would wait for it as for a lost stanza.
	return []mirrorStanza{{"<message xmlns='" + nsClient + "' from='" + stanza.Escape(after.JID) + "' to='" + stanza.Escape(via) + "'></message>", false}}
}

func (s *Service) renderForMirror(before, after room.State, e event.Envelope, via string) []mirrorStanza {
	viewer := func(o room.Occupant) string {
		if o.Via == via {
			return o.Account // its jid, not its self codes: those are given explicitly
		}
		return ""
	}
	one := func(x string, urgent bool) []mirrorStanza { return []mirrorStanza{{x, urgent}} }
	switch e.Type {
	case room.TypeJoined:
		var d room.Joined
		if e.Decode(room.Schema, &d) == nil {
			if o, ok := after.Occupants[d.Account]; ok {
				return one(s.occupantXML(after, o, viewer(o), via, "", nil, ""), true)
			}
		}
	case room.TypeMessagePosted:
		var d room.MessagePosted
		if e.Decode(room.Schema, &d) == nil && !d.Erased {
			return one(stanza.WithTo(stanza.InsertChild(d.Stanza, stanza.IDElement(after.JID, d.ID)), via), true)
		}
	case room.TypeSubjectSet:
		var d room.SubjectSet
		if e.Decode(room.Schema, &d) == nil {
			return one(subjectXML(after.JID, d, via), true)
		}
	case room.TypeConfigured, room.TypeVCardSet:
		if before.Exists && !before.Locked {
			return one(configChangedXML(after.JID, via), false)
		}
	case room.TypePresenceChanged, room.TypeRoleSet, room.TypeAffiliationSet:
		var d struct {
			Account string `json:"account"`
			JID     string `json:"jid"`
		}
		if e.Decode(room.Schema, &d) == nil {
			if o, ok := after.Occupants[d.Account+d.JID]; ok {
				return one(s.occupantXML(after, o, viewer(o), via, "", nil, ""), false)
			}
		}
	case room.TypeNickChanged:
		var d room.NickChanged
		if e.Decode(room.Schema, &d) == nil {
			o, old := after.Occupants[d.Account], before.Occupants[d.Account]
			return []mirrorStanza{{s.nickGoneXML(after, old, o.Nick, viewer(o), via, []int{303}), false},
				{s.occupantXML(after, o, viewer(o), via, "", nil, ""), false}}
		}
	case room.TypeLeft:
		var d room.Left
		if e.Decode(room.Schema, &d) == nil {
			if o, ok := before.Occupants[d.Account]; ok {
				o.Role = room.NoRole
				return one(s.exitXML(after, o, d, viewer(o), via, exitCodesOf(d)), false)
			}
		}
	case room.TypeDestroyed:
		var d room.Destroyed
		if e.Decode(room.Schema, &d) == nil {
			// One part per occupant, in the accounts' order: a resend
			// gives the same parts as the live telling.
			var out []mirrorStanza
			for _, acct := range slices.Sorted(maps.Keys(before.Occupants)) {
				o := before.Occupants[acct]
				out = append(out, mirrorStanza{s.destroyedXML(before, o, d, viewer(o), via, nil), true})
			}
			return out
		}
	}
	return nil
}

// publishMirrors tells each mirror attached to the room what event e did
// to it, once however many of the mirror's users are in, and detaches a
// mirror none of whose users is left.
func (s *Service) publishMirrors(before, after room.State, e event.Envelope) {
	for _, key := range s.muc.mirrors(after.JID) {
		parts := s.forMirror(before, after, e, strings.TrimPrefix(key, mirrorPrefix))
		for i, p := range parts {
			x := stanza.InsertChild(p.xml, seqXML(e.Version, i, len(parts)))
			s.muc.tell(after.JID, key, e.Version, func(mux.Session) string { return x }, p.urgent)
		}
	}
	switch e.Type {
	case room.TypeLeft:
		var d room.Left
		if e.Decode(room.Schema, &d) == nil && before.Occupants[d.Account].Via != "" {
			s.mirrorUnused(after, before.Occupants[d.Account].Via, e.Version)
		}
	case room.TypeDestroyed:
		for _, key := range s.muc.mirrors(after.JID) {
			s.muc.detachAccount(after.JID, key, e.Version)
		}
	}
}

// mirrorSession is the session that reaches mirror via, or nil when the
// server reaches no other server.
func (s *Service) mirrorSession(via string) mux.Session {
	j, err := jid.Parse(via)
	if err != nil {
		return nil
	}
	for _, sess := range s.host.Sessions(j) {
		return sess
	}
	return nil
}

// mirrorUnused detaches the mirror via from room st once no occupant
// joined through it any more (after the exit at version).
func (s *Service) mirrorUnused(st room.State, via string, version uint64) {
	for _, o := range st.Occupants {
		if o.Via == via {
			return
		}
	}
	s.muc.detachAccount(st.JID, mirrorKey(via), version)
}

// mirrors returns the attachment keys of the mirrors attached to r.
func (a *attachments) mirrors(r string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for key := range a.rooms[r] {
		if strings.HasPrefix(key, mirrorPrefix) {
			out = append(out, key)
		}
	}
	return out
}

// introduceMirror sends a mirror new to room st the room's configuration
// and its roster (ProtoXEP §3.2.1: urn:xmpp:dmuc:0 <config/> and
// <roster/>), the roster carrying the room's sequence: the mirror's
// replica starts there (docs/dmuc.md).
// NOTSPEC(ProtoXEP §3.2.1): the roster items carry role, show and status
// besides affiliation, jid and name, so that the mirror can show the
// occupants' presence without a second round.
func (s *Service) introduceMirror(st room.State, m mux.Session) {
	m.Send("<iq xmlns='" + nsClient + "' type='set' id='" + stanza.NewID() + "' from='" + stanza.Escape(st.JID) + "' to='" + stanza.Escape(m.JID().String()) +
		"'><config xmlns='" + nsDMUC0 + "'>" + configForm(st.Config) + "</config></iq>")
	var b strings.Builder
	b.WriteString("<iq xmlns='" + nsClient + "' type='set' id='" + stanza.NewID() + "' from='" + stanza.Escape(st.JID) + "' to='" + stanza.Escape(m.JID().String()) +
		"'><roster xmlns='" + nsDMUC0 + "' seq='" + strconv.FormatUint(st.Version, 10) + "'>")
	for _, o := range st.Occupants {
		b.WriteString("<item affiliation='" + string(st.Affiliation(o.Account)) + "' role='" + string(o.Role) + "' name='" + stanza.Escape(o.Nick) + "'")
		if st.Config.WhoisAnyone || o.Via == m.JID().String() {
			b.WriteString(" jid='" + stanza.Escape(o.Account) + "'")
		}
		if o.Show != "" {
			b.WriteString(" show='" + stanza.Escape(o.Show) + "'")
		}
		if o.Status != "" {
			b.WriteString(" status='" + stanza.Escape(o.Status) + "'")
		}
		b.WriteString("/>")
	}
	b.WriteString("</roster></iq>")
	m.Send(b.String())
}
