package mirror

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/mirror"
)

// Namespaces of what a master sends its mirrors.
const (
	nsDMUC0   = "urn:xmpp:dmuc:0"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
	nsSID     = stanza.NSStanzaID
)

// ErrNoSequence: a stanza from a master without its sequence element,
// which a mirror cannot place.
var ErrNoSequence = errors.New("mirror: no sequence")

// Read reads a presence or groupchat message a master sent its mirror:
// its sequence and what it says of the room. A message the mirror's own
// user posted comes back with the origin-id (XEP-0359) the mirror gave
// it, which the Applied accepts. The stanza kept is the master's without
// the sequence element.
func Read(e *stanza.Element) (mirror.Applied, error) {
	var a mirror.Applied
	rest, err := sequence(e, &a)
	if err != nil {
		return a, err
	}
	from, err := jid.Parse(e.Attr("from"))
	if err != nil || from.Localpart() == "" {
		return a, fmt.Errorf("mirror: from %q is no room or occupant", e.Attr("from"))
	}
	kept := *e
	kept.Inner = rest
	a.Stanza = stanza.WithoutTo(stanza.Restamp(&kept, from.String()))
	switch e.XMLName.Local {
	case "presence":
		nick := from.Resourcepart()
		if nick == "" {
			return a, errors.New("mirror: a presence not from an occupant")
		}
		a.Kind, a.Occupant = mirror.Presence, &mirror.Occupant{Nick: nick, Show: e.ChildText("show"), Status: e.ChildText("status")}
		if x, ok := e.Named(nsMUCUser, "x"); ok {
			if item, ok := x.Named(nsMUCUser, "item"); ok {
				a.Occupant.JID, a.Occupant.Affiliation, a.Occupant.Role = item.Attr("jid"), item.Attr("affiliation"), item.Attr("role")
			}
		}
		a.Gone = e.Attr("type") == "unavailable"
	case "message":
		if len(bytes.TrimSpace(rest)) == 0 && e.Attr("type") == "" && from.Resourcepart() == "" {
			// Nothing but the sequence: a room event with nothing to show.
			a.Kind = mirror.Tick
			return a, nil
		}
		if e.Attr("type") != "groupchat" {
			return a, fmt.Errorf("mirror: a message of type %q from a room", e.Attr("type"))
		}
		_, subject := e.Named(stanza.NSClient, "subject")
		_, body := e.Named(stanza.NSClient, "body")
		if subject && !body {
			a.Kind, a.Subject = mirror.Subject, e.ChildText("subject")
			return a, nil
		}
		a.Kind, a.Nick = mirror.Message, from.Resourcepart()
		for _, c := range e.Children() {
			if c.XMLName == (xml.Name{Space: nsSID, Local: "stanza-id"}) && c.Attr("by") == from.Bare().String() {
				a.ID = c.Attr("id")
			}
		}
		if o, ok := e.Named(nsSID, "origin-id"); ok {
			a.Accepts = o.Attr("id")
		}
	default:
		return a, fmt.Errorf("mirror: a %s from a master", e.XMLName.Local)
	}
	return a, nil
}

// sequence reads e's sequence element (<dmuc seq='N' part='I'
// more='true'/>: parts of one room event) into a and returns e's payload
// without it.
func sequence(e *stanza.Element, a *mirror.Applied) ([]byte, error) {
	d, ok := e.Named(nsDMUC0, "dmuc")
	if !ok {
		return nil, ErrNoSequence
	}
	seq, err := strconv.ParseUint(d.Attr("seq"), 10, 64)
	if err != nil || seq == 0 {
		return nil, fmt.Errorf("%w: seq %q", ErrNoSequence, d.Attr("seq"))
	}
	a.Seq = seq
	if p := d.Attr("part"); p != "" {
		part, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: part %q", ErrNoSequence, p)
		}
		a.Part = uint32(part)
	}
	a.More = d.Attr("more") == "true"
	return stanza.WithoutChildren(e, xml.Name{Space: nsDMUC0, Local: "dmuc"}), nil
}

// ReadRoster reads the roster a master sends a new mirror (<roster
// xmlns='urn:xmpp:dmuc:0' seq='N'/>): the room's occupants at sequence N.
func ReadRoster(q *stanza.Element) (mirror.Applied, error) {
	var a mirror.Applied
	if q.XMLName.Space != nsDMUC0 || q.XMLName.Local != "roster" {
		return a, errors.New("mirror: not a roster")
	}
	seq, err := strconv.ParseUint(q.Attr("seq"), 10, 64)
	if err != nil || seq == 0 {
		return a, fmt.Errorf("%w: roster seq %q", ErrNoSequence, q.Attr("seq"))
	}
	a.Seq, a.Kind = seq, mirror.Roster
	for _, it := range q.Children() {
		if it.XMLName.Local != "item" || it.Attr("name") == "" {
			continue
		}
		a.Occupants = append(a.Occupants, mirror.Occupant{Nick: it.Attr("name"), JID: it.Attr("jid"), Affiliation: it.Attr("affiliation"),
			Role: it.Attr("role"), Show: it.Attr("show"), Status: it.Attr("status")})
	}
	return a, nil
}
