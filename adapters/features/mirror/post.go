package mirror

// What the accounts here say in a mirrored room (docs/dmuc.md,
// "Messages from mirror users").

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/mirror"
)

// Errors of Post, for the session to answer its client with.
var (
	// errDuplicate: a message with the same origin-id waits already.
	errDuplicate = &stanza.Error{Type: "cancel", Cond: "conflict", Text: "a message with this origin-id waits for the room's server already"}
	// errBacklog: too many messages wait for the master (mirror.MaxPending).
	errBacklog = &stanza.Error{Type: "wait", Cond: "resource-constraint", Text: "too many messages wait for the room's server"}
)

// Post records a groupchat message an account here sends room r as nick
// (wire: the stanza from its occupant JID to the room) as pending, with
// an origin-id (XEP-0359; the client's own if it gave one), and sends it
// to the master, whose copy accepts it and tells everyone here, in the
// master's order. While the link is lost the accounts here are told at
// once instead, and it goes to the master when the link is back. A
// refusal is a *stanza.Error.
//
// NOTSPEC(ProtoXEP §3.4): the ProtoXEP's mirror tells its users a
// message before the master has it, so two sides may see two orders. The
// ProtoXEP is silent on order; this follows FMUC (XEP-0289 §1.1,
// "Primary-Replica mode", and its TBD: "the sending room waits for the
// echo back"): one order, the master's, while the link is up, and
// "Primary-Primary mode" only while it is lost, whose messages the
// archives then keep in the order the master gave them.
func (s *Service) Post(ctx context.Context, r jid.JID, acct, nick, wire string) error {
	e, err := stanza.Parse([]byte(wire), 64)
	if err != nil {
		return err
	}
	id := ""
	if o, ok := e.Named(nsSID, "origin-id"); ok {
		id = o.Attr("id")
	}
	if id == "" {
		id = stanza.NewID()
		wire = stanza.InsertChild(wire, "<origin-id xmlns='"+nsSID+"' id='"+id+"'/>")
	}
	up := s.Up(r)
	_, _, err = s.cfg.Replicas.Do(ctx, r.String(), mirror.Post{Posted: mirror.Posted{LocalID: id, Account: acct, Nick: nick, Stanza: wire, Partitioned: !up}})
	switch {
	case errors.Is(err, mirror.ErrStale):
		return errDuplicate
	case errors.Is(err, mirror.ErrInvalid):
		return errBacklog
	case err != nil:
		return err
	}
	if up {
		s.sendPost(r, mirror.Posted{Stanza: wire})
		return nil
	}
	// The accounts here see it from the room, as the master would send it.
	from, err := r.WithResource(nick)
	if err != nil {
		return err
	}
	if e, err = stanza.Parse([]byte(wire), 64); err != nil {
		return err
	}
	local, err := stanza.Parse([]byte(stanza.WithoutTo(stanza.Restamp(e, from.String()))), 64)
	if err != nil {
		return err
	}
	s.host.FromMirror(from, local)
	return nil
}

// Refused takes the master's refusal of a message account acct sent
// room r (a groupchat error to its occupant JID, answering the stanza
// with id): the post it answers waits no more. The account's sessions
// get the error as from any room.
func (s *Service) Refused(ctx context.Context, r jid.JID, acct, id, cond string) {
	if id == "" {
		return // nothing names the post
	}
	st, err := s.cfg.Replicas.Get(ctx, r.String())
	if err != nil {
		return
	}
	for _, p := range st.Pending {
		e, err := stanza.Parse([]byte(p.Stanza), 64)
		if err != nil || p.Account != acct || e.Attr("id") != id {
			continue
		}
		if _, _, err := s.cfg.Replicas.Do(ctx, r.String(), mirror.Refuse{Refused: mirror.Refused{LocalID: p.LocalID, Condition: cond}}); err == nil {
			s.cfg.Log.Info("mirror: the master refused a post", "room", r.String(), "account", acct, "condition", cond)
		}
		return
	}
}
