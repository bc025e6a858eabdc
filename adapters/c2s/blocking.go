package c2s

// Blocking (XEP-0191): the block list's IQs, its pushes, and what a block
// or an unblock does to presence. Which stanzas a list stops is decided
// where each is routed (router.go, chat.go, presence.go, inbound.go,
// stanzas.go), from the lists kept in memory (blocklists.go).
//
// It lives in the core rather than in a feature package: every stanza
// path of the core asks the lists, the pushes go to the sessions that
// asked for the list (per-session state the core holds and forgets with
// the session) and follow the log as roster pushes do (only the core sees
// every batch), and a block changes presence, which is the core's.
//
// NOTSPEC(XEP-0191 §3.3): what the room services deliver (groupchat and
// private messages, presence of occupants) does not pass the lists: they
// deliver to the account's sessions directly. A user blocks an occupant
// in its client, as today.

import (
	"context"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/blocking"
	"annals.im/annals/domain/event"
	"annals.im/annals/domain/roster"
)

const (
	nsBlocking       = "urn:xmpp:blocking"
	nsBlockingErrors = "urn:xmpp:blocking:errors"
)

// Blocking is what the core needs of the accounts' block lists.
type Blocking interface {
	// Blocklist returns an account's list (empty for one that does not
	// exist).
	Blocklist(ctx context.Context, acct string) (blocking.State, error)
	// Block runs a block or unblock command on an account's list and
	// returns the list before and after it.
	Block(ctx context.Context, acct string, cmd blocking.Command) (before, after blocking.State, err error)
}

func isBlockingEvent(e event.Envelope) bool {
	return e.Type == blocking.TypeBlocked || e.Type == blocking.TypeUnblocked
}

// blocks reports whether acct, a local account, blocks other: takes no
// stanza from it and sends none to it. An account never blocks its own
// JIDs: one of its resources is never blocked from another (XEP-0191 §4).
// A list that cannot be read blocks, and is logged: a store that cannot
// read the list cannot store what the stanza would make either.
func (s *Server) blocks(ctx context.Context, acct string, other jid.JID) bool {
	if s.lists == nil || other.Bare().String() == acct {
		return false
	}
	st, err := s.lists.get(ctx, acct)
	if err != nil {
		s.cfg.Log.Error("reading a block list", "account", acct, "err", err)
		return true
	}
	return st.Blocks(other)
}

// blocksLocal reports whether `to`, where a stanza from `from` goes, is an
// account here that blocks `from`; a stanza to another server or to a
// domain is no account's to block.
func (s *Server) blocksLocal(ctx context.Context, to jid.JID, from jid.JID) bool {
	return to.Localpart() != "" && s.isLocal(to) && s.blocks(ctx, to.Bare().String(), from)
}

// eitherBlocks reports whether local accounts a and b (bare JIDs) keep
// stanzas from each other either way.
func (s *Server) eitherBlocks(ctx context.Context, a, b string) bool {
	if s.lists == nil {
		return false
	}
	aj, err1 := jid.Parse(a)
	bj, err2 := jid.Parse(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return s.blocks(ctx, a, bj) || s.isLocal(bj) && s.blocks(ctx, b, aj)
}

// refuseBlocked answers a stanza c sent to a JID its account blocks
// (XEP-0191 §3.3): not-acceptable with <blocked/>; an error or an IQ
// answer is dropped (errors are never answered).
func (c *conn) refuseBlocked(e *element) error {
	typ := e.Attr("type")
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return nil
	}
	return c.write(fmt.Sprintf(`<%s type='error' id='%s'%s><error type='cancel'><not-acceptable xmlns='%s'/><text xmlns='%s'>you have blocked this JID</text><blocked xmlns='%s'/></error></%s>`,
		e.XMLName.Local, stanza.Escape(e.Attr("id")), stanza.ToFrom(c.jid.String(), c.replyFrom(e)), nsStanzas, nsStanzas, nsBlockingErrors, e.XMLName.Local))
}

// answersBlocked reports whether a stanza from a JID its recipient blocks
// is answered (with service-unavailable, as if there were no such account
// or resource) rather than dropped (XEP-0191 §3.3): a chat or normal
// message and an IQ get or set are; presence, IQ answers and errors are
// not.
//
// NOTSPEC(XEP-0191 §3.3): a headline or groupchat message is dropped, not
// answered, as RFC 6121 §8.5.2 drops them for an account with no
// available resource (Prosody does the same).
func answersBlocked(e *element) bool {
	typ := e.Attr("type")
	switch e.XMLName.Local {
	case "message":
		return typ == "" || typ == "chat" || typ == "normal"
	case "iq":
		return typ == "get" || typ == "set"
	}
	return false
}

// refusedBy answers (or drops) what c sent to an account that blocks it.
func (c *conn) refusedBy(e *element) error {
	if !answersBlocked(e) {
		return nil
	}
	return c.write(c.errorReply(e, "cancel", "service-unavailable"))
}

// blockingIQ answers the block list's IQs (XEP-0191 §3.2-§3.5) from the
// account's own sessions: a get of the list, which also asks for the
// pushes, and a set of block or unblock.
func (s *Server) blockingIQ(ctx context.Context, iq *mux.IQ) error {
	c, ok := iq.Session.(*conn)
	if !ok {
		return stanza.Errorf("service-unavailable", "")
	}
	acct := c.jid.Bare().String()
	name, typ := iq.Payload.XMLName.Local, iq.Type()
	switch {
	case name == "blocklist" && typ == "get":
		// Marked before the list is read: a change made after the read is
		// pushed, not lost between the two.
		c.blocklist.Store(true)
		st, err := s.lists.get(ctx, acct)
		if err != nil {
			return err
		}
		iq.Result("<blocklist xmlns='" + nsBlocking + "'>" + blockItems(st.JIDs) + "</blocklist>")
		return nil
	case (name == "block" || name == "unblock") && typ == "set":
	default:
		return stanza.Errorf("bad-request", "a blocklist get, or a block or unblock set")
	}
	var jids []string
	for _, it := range iq.Payload.Children() {
		if it.XMLName.Space == nsBlocking && it.XMLName.Local == "item" {
			jids = append(jids, it.Attr("jid"))
		}
	}
	var cmd blocking.Command = blocking.Unblock{JIDs: jids}
	if name == "block" {
		cmd = blocking.Block{JIDs: jids, Limits: blocking.Limits{MaxJIDs: max(s.cfg.MaxBlockedJIDs, 0)}}
	}
	before, after, err := s.cfg.Blocking.Block(ctx, acct, cmd)
	if err != nil {
		se, known := stanza.ErrorFor(err)
		if !known {
			return err
		}
		return se
	}
	// The push comes from the log (Publish); the list the router checks
	// changes now, before the answer: what the client sends next is
	// checked against it.
	s.lists.set(acct, after)
	iq.Result("")
	s.blockPresence(ctx, acct, before, after)
	return nil
}

func blockItems(jids []string) string {
	var b strings.Builder
	for _, j := range jids {
		b.WriteString("<item jid='" + stanza.Escape(j) + "'/>")
	}
	return b.String()
}

// pushBlocklist sends the change e made to an account's list to each of
// its sessions that asked for the list (XEP-0191 §3.3, §3.4, §3.5): the
// JIDs blocked, or unblocked, or an empty unblock for all of them.
func (s *Server) pushBlocklist(e event.Envelope) {
	var d struct {
		JIDs []string `json:"jids"`
	}
	if err := e.Decode(blocking.Schema, &d); err != nil {
		s.cfg.Log.Error("block list push", "stream", e.Stream, "version", e.Version, "err", err)
		return
	}
	name := "block"
	if e.Type == blocking.TypeUnblocked {
		name = "unblock"
	}
	payload := "<" + name + " xmlns='" + nsBlocking + "'>" + blockItems(d.JIDs) + "</" + name + ">"
	for _, c := range s.sessionsOf(account.JIDOf(e.Stream)) {
		if c.blocklist.Load() {
			c.write(fmt.Sprintf(`<iq type='set' id='block%s' to='%s'>%s</iq>`, stanza.NewID(), stanza.Escape(c.jid.String()), payload))
		}
	}
}

// blockPresence does what a change of acct's list from before to after
// does to presence, for each contact it blocks or unblocks. One that
// sees acct's presence (From, Both) gets unavailable from each available
// session on a block (XEP-0191 §3.3) and their current presence on an
// unblock (§3.4); and acct's sessions stop seeing a contact whose
// presence they see (To, Both), or see it again by a probe, as when they
// became available: while blocked, its presence was dropped.
func (s *Server) blockPresence(ctx context.Context, acct string, before, after blocking.State) {
	if s.cfg.Accounts == nil || len(s.availableOf(acct)) == 0 {
		return // nobody's presence to share or to see
	}
	st, err := s.cfg.Accounts.Roster(ctx, acct)
	if err != nil {
		s.cfg.Log.Error("presence after a block list change", "account", acct, "err", err)
		return
	}
	for contact, it := range st.Items {
		cj, err := jid.Parse(contact)
		if err != nil {
			continue
		}
		was, is := before.Blocks(cj), after.Blocks(cj)
		if was == is {
			continue
		}
		sees := it.Subscription == roster.From || it.Subscription == roster.Both
		seen := it.Subscription == roster.To || it.Subscription == roster.Both
		remote := !s.isLocal(cj)
		switch {
		case is && sees && remote:
			for _, o := range s.availableOf(acct) {
				s.sendRemote(o.jid.String(), contact, unavailable(o.jid.String(), contact))
			}
		case is && sees:
			s.goneFrom(acct, contact)
		case sees && remote:
			for _, o := range s.availableOf(acct) {
				s.mu.Lock()
				p := o.available
				s.mu.Unlock()
				if p != "" {
					s.sendRemote(o.jid.String(), contact, stanza.WithTo(p, contact))
				}
			}
		case sees:
			s.presenceTo(ctx, acct, contact) // unless the contact blocks acct
		}
		switch {
		case is && seen && remote:
			for _, c := range s.availableOf(acct) {
				c.deliver(unavailable(contact, c.jid.String()), false)
			}
		case is && seen:
			s.goneFrom(contact, acct)
		case seen && remote:
			s.probeRemote(acct, contact)
		case seen && !s.blocks(ctx, contact, jid.MustParse(acct)):
			for _, c := range s.availableOf(acct) {
				s.presenceOf(contact, c)
			}
		}
	}
}

// goneFrom tells every available session of to that from's available
// sessions are gone from its view, whatever the lists say: it is what a
// block says to the one blocked, and to the one blocking.
func (s *Server) goneFrom(from, to string) {
	for _, o := range s.availableOf(from) {
		for _, c := range s.availableOf(to) {
			c.deliver(unavailable(o.jid.String(), c.jid.String()), false)
		}
	}
}

func unavailable(from, to string) string {
	return fmt.Sprintf(`<presence xmlns='%s' type='unavailable' from='%s' to='%s'/>`, nsClient, stanza.Escape(from), stanza.Escape(to))
}

// fromOf returns the from of a stanza this server serialized (single
// quotes, '>' escaped in values), or false.
func fromOf(s string) (jid.JID, bool) {
	end := strings.IndexByte(s, '>')
	if end < 0 {
		return jid.JID{}, false
	}
	_, v, ok := strings.Cut(s[:end], " from='")
	if !ok {
		return jid.JID{}, false
	}
	v, _, _ = strings.Cut(v, "'")
	j, err := jid.Parse(unescapeAttr(v))
	return j, err == nil
}

var attrUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#39;", "'", "&#34;", `"`, "&quot;", `"`, "&apos;", "'")

func unescapeAttr(s string) string { return attrUnescaper.Replace(s) }

// EitherBlocks reports whether account a blocks b or b blocks a (bare
// JIDs): what a feature that tells one of the other (PEP events) asks.
func (s *Server) EitherBlocks(ctx context.Context, a, b string) bool {
	return s.eitherBlocks(ctx, a, b)
}
