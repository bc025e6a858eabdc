package muc

// DMUC3 masters (issue 13, docs/dmuc.md): a room tells each mirror its
// occupants joined through once per event, not once per occupant, with
// the event's version as the mirror's sequence number.

import (
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/room"
)

// mirrorPrefix begins the attachment key of a mirror: the room's
// attachments hold it beside the accounts' (no JID has a space).
const mirrorPrefix = "mirror "

func mirrorKey(via string) string { return mirrorPrefix + via }

// seqXML is the sequence element a master's stanza to a mirror carries:
// the room event's version (docs/dmuc.md, "Sequence").
func seqXML(version uint64) string {
	return "<dmuc xmlns='" + nsDMUC0 + "' seq='" + strconv.FormatUint(version, 10) + "'/>"
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

// tellMirrors sends each mirror attached to the room what build makes of
// the event at version, addressed to the mirror, with its sequence.
func (s *Service) tellMirrors(r string, version uint64, build func(to string) string, urgent bool) {
	for _, key := range s.muc.mirrors(r) {
		s.muc.tell(r, key, version, func(c mux.Session) string {
			return stanza.InsertChild(build(c.JID().String()), seqXML(version))
		}, urgent)
	}
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
