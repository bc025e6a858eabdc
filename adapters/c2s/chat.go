package c2s

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
)

// Archive is what 1:1 chat needs from the message archive and the log
// behind it (queries are the mam feature's).
type Archive interface {
	// Exists reports whether the account with this bare JID exists.
	Exists(ctx context.Context, bare string) (bool, error)
	// Record stores a 1:1 message: it fills in who archives it from the
	// parties' preferences and returns the event's data (the archive IDs)
	// once it is durable. archive.ErrDuplicate: the sender's archive
	// already has the computed ID (a retry); account.ErrNotFound: no
	// such recipient.
	Record(ctx context.Context, m archive.Send) (archive.MessageSent, error)
	// Offline returns the messages waiting for acct's next session, and
	// Delivered records that they were handed over through one ID.
	Offline(ctx context.Context, acct string, max int) ([]archive.Entry, error)
	Delivered(ctx context.Context, acct, through string) error
}

// deliveryLocks serialize, per recipient account, "is a client available,
// record the message, route it" against "become available, flush offline
// messages": a message is either delivered live or found by the flush,
// never both and never neither. Messages share the lock; a flush takes it
// alone. Accounts hash onto a fixed set of locks.
type deliveryLocks [64]sync.RWMutex

func (l *deliveryLocks) of(bare string) *sync.RWMutex {
	return &l[bucketOf(bare)%uint32(len(l))]
}

func bucketOf(bare string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(bare))
	return h.Sum32()
}

// message handles a message from this session.
func (c *conn) message(ctx context.Context, e *element) error {
	to := c.jid.Bare() // no to: the user's own account (RFC 6120 §8.1.1.1)
	if e.Attr("to") != "" {
		var err error
		if to, err = jid.Parse(e.Attr("to")); err != nil {
			return c.write(c.errorReply(e, "modify", "jid-malformed"))
		}
	}
	typ := e.Attr("type")
	if typ == "" {
		typ = "normal"
	}
	m := stanza.ScanMessage(e)
	stripped := *e
	stripped.Inner = m.Inner
	wire := stanza.Restamp(&stripped, c.jid.String())
	switch typ {
	case "chat", "normal":
		if to.Localpart() != "" {
			return c.chat(ctx, e, to, typ, m, wire)
		}
	case "groupchat", "headline", "error":
	default:
		return c.write(c.errorReply(e, "modify", "bad-request"))
	}
	// Not 1:1 chat: routed as RFC 6121 §8.5 says, neither forked nor archived.
	if c.srv.blocksLocal(ctx, to, c.jid) {
		return c.refusedBy(e)
	}
	targets, elsewhere := c.srv.route(to), c.srv.nodeRoute(to)
	if len(targets) == 0 && len(elsewhere) == 0 {
		if typ == "error" || typ == "headline" || typ == "groupchat" {
			return nil // dropped silently (RFC 6121 §8.5.2.1.2, §8.5.3.2.1)
		}
		return c.write(c.errorReply(e, "cancel", "service-unavailable"))
	}
	for _, t := range targets {
		t.deliver(wire, m.Body)
	}
	for _, n := range elsewhere {
		c.srv.toNode(n, wire)
	}
	return nil
}

// chat handles a 1:1 message (chat or normal) to an account: it is
// archived once for each local party, delivered to every available client
// of a local recipient (or sent to a remote one's server) and copied to
// every other available client of the sender.
//
// NOTSPEC(XEP-0280 §6): <private/> and XEP-0334 <no-copy/> do not stop the
// copies: every client of both parties sees the whole conversation, which
// is the point of server-side chat state. <no-store/> and
// <no-permanent-store/> are honoured: such a message is forked but kept in
// no archive (so it has no archive ID).
func (c *conn) chat(ctx context.Context, e *element, to jid.JID, typ string, m stanza.MessageInfo, wire string) error {
	s := c.srv
	sender, recipient := c.jid.Bare().String(), to.Bare().String()
	remote := !s.isLocal(to)
	r, err := s.recordChat(ctx, archive.Send{From: c.jid, To: to, Kind: typ, Stanza: wire, Reserialized: true,
		MessageID: e.Attr("id"), Session: c.sid}, m.Archivable())
	var se *stanza.Error
	switch {
	case errors.Is(err, archive.ErrDuplicate):
		c.log.Debug("message sent again on the same session: stored and delivered already", "id", clip(e.Attr("id"), 256))
		return nil
	case errors.As(err, &se):
		return c.write(c.errorFor(e, se))
	case err != nil:
		c.log.Error("archiving a message failed", "err", err)
		return c.write(c.errorReply(e, "wait", "resource-constraint"))
	}
	defer r.unlock()
	urgent := m.Body || m.Crypted
	if sender == recipient {
		// A note to oneself: one archive entry, every other client gets it.
		note := withStanzaID(wire, sender, r.rec.SenderID)
		for _, t := range append(r.direct, r.others...) {
			if t != c {
				t.deliver(note, urgent)
			}
		}
		return nil
	}
	if remote {
		// Stored before it leaves: the sender's stanza-id is ours to give,
		// the recipient's is its own server's.
		s.cfg.Remote.Send(c.jid, to, wire)
	} else {
		r.deliver(wire, recipient, typ, urgent)
		if urgent {
			s.pushFor(recipient, c.jid.String(), e)
		}
	}
	out := withStanzaID(wire, sender, r.rec.SenderID)
	for _, t := range s.availableOf(sender) {
		if t != c {
			t.deliver(stanza.Carbon("sent", sender, t.jid.String(), typ, out), urgent)
		}
	}
	if !r.logged() {
		s.chatToNodes(c.jid, to, typ, wire, remote)
	}
	return nil
}

// chatToNodes hands a 1:1 message that is in no archive, and so in no
// log, to the sessions of both parties on other nodes (an archived one
// reaches them from the log: publishChat).
func (s *Server) chatToNodes(from, to jid.JID, typ, wire string, remote bool) {
	if s.cfg.Cluster == nil {
		return
	}
	sender, recipient := from.Bare().String(), to.Bare().String()
	if !remote && sender != recipient {
		direct, others := s.nodeChatTargets(to)
		for _, n := range direct {
			s.toNode(n, wire)
		}
		for _, n := range others {
			s.toNode(n, stanza.Carbon("received", recipient, n.JID, typ, wire))
		}
	}
	for _, n := range s.nodeSessions(sender, true) {
		if n.JID != from.String() {
			s.toNode(n, stanza.Carbon("sent", sender, n.JID, typ, wire))
		}
	}
}

// chatRoute is a recorded 1:1 message and the local clients of its
// recipient it goes to, with the recipient's delivery lock held until
// unlock.
type chatRoute struct {
	rec            archive.MessageSent
	direct, others []*conn
	unlock         func()
}

// logged reports whether the message was archived, and so is in the log.
func (r chatRoute) logged() bool { return r.rec.SenderID != "" || r.rec.RecipientID != "" }

// deliver hands the message, with the recipient's stanza-id, to the
// recipient's clients: the addressed ones, and a carbon to the others.
func (r chatRoute) deliver(wire, recipient, typ string, urgent bool) {
	in := withStanzaID(wire, recipient, r.rec.RecipientID)
	for _, t := range r.direct {
		t.deliver(in, urgent)
	}
	for _, t := range r.others {
		t.deliver(stanza.Carbon("received", recipient, t.jid.String(), typ, in), urgent)
	}
}

// recordChat archives a 1:1 message for whichever parties are local and
// archive it, and finds the local recipient's clients, holding its
// delivery lock (see deliveryLocks) until the route's unlock. A message
// with nobody to hand it to waits, stored, for the recipient's next
// session. It fails with archive.ErrDuplicate for a retry the sender's
// archive has, with a *stanza.Error for the sender when the message is
// refused (the recipient blocks the sender, say), or with another error
// when storing failed.
func (s *Server) recordChat(ctx context.Context, m archive.Send, archivable bool) (chatRoute, error) {
	r := chatRoute{unlock: func() {}}
	if s.blocksLocal(ctx, m.To, m.From) {
		// XEP-0191 §3.3: refused, and so kept in no archive.
		return chatRoute{}, &stanza.Error{Type: "cancel", Cond: "service-unavailable"}
	}
	elsewhere := false // the recipient has a client on another node
	if s.isLocal(m.To) {
		lock := s.delivery.of(m.To.Bare().String())
		lock.RLock()
		r.unlock = lock.RUnlock
		r.direct, r.others = s.chatTargets(m.To)
		elsewhere = len(s.nodeSessions(m.To.Bare().String(), true)) > 0
	}
	if s.cfg.Cluster != nil {
		// Until it is remembered as delivered here, this node's log
		// follower must not meet it (publishChat).
		appending := s.appended.lock(m.To.Bare().String())
		appending.RLock()
		defer appending.RUnlock()
	}
	m.Offline = s.isLocal(m.To) && len(r.direct) == 0 && !elsewhere
	var err error
	if !archivable || s.cfg.Archive == nil {
		err = s.checkRecipient(ctx, m.To, len(r.direct) > 0)
	} else {
		r.rec, err = s.cfg.Archive.Record(ctx, m)
		switch {
		case errors.Is(err, account.ErrNotFound):
			err = stanza.Errorf("service-unavailable", "")
		case errors.Is(err, archive.ErrQuota):
			// The sender's own storage is used up: resource-constraint
			// (RFC 6120 §8.3.3.18), as for any resource it exhausted.
			err = &stanza.Error{Type: "wait", Cond: "resource-constraint", Text: "you have stored as many messages as this server keeps for an account"}
		case errors.Is(err, archive.ErrOfflineFull):
			// RFC 6121 §8.5.2.1.1: a message the server does not store for an
			// offline recipient gets service-unavailable (ejabberd answers
			// resource-constraint); the text says why.
			err = stanza.Errorf("service-unavailable", "the recipient has too many messages waiting offline")
		}
		if r.rec.Offline {
			// Nobody to hand it to now: the recipient's next session gets
			// it (flushOffline). The sender's other clients still see it.
			r.direct, r.others = nil, nil
		}
		if err == nil && s.cfg.Cluster != nil {
			s.appended.remember(r.rec)
		}
	}
	if err != nil {
		r.unlock()
		var se *stanza.Error
		if errors.As(err, &se) && se.Type == "" {
			se.Type = stanza.Types[se.Cond]
		}
		return chatRoute{}, err
	}
	return r, nil
}

// checkRecipient refuses a message that is not archived (which would
// find out) to a local account that does not exist; one with a client to
// take it exists.
func (s *Server) checkRecipient(ctx context.Context, to jid.JID, online bool) error {
	if online || !s.isLocal(to) {
		return nil
	}
	if s.cfg.Archive == nil {
		return stanza.Errorf("service-unavailable", "")
	}
	if ok, err := s.cfg.Archive.Exists(ctx, to.Bare().String()); err == nil && !ok {
		return stanza.Errorf("service-unavailable", "")
	}
	return nil
}

func withStanzaID(wire, by, id string) string {
	if id == "" {
		return wire
	}
	return stanza.InsertChild(wire, stanza.IDElement(by, id))
}

// chatTargets is targets across nodes: a full JID bound on another node
// is the one addressed there, and every available session here gets a
// carbon.
func (s *Server) chatTargets(to jid.JID) (direct, others []*conn) {
	direct, others = s.targets(to)
	if to.Resourcepart() != "" && s.sessionAt(to) == nil && s.boundElsewhere(to) {
		return nil, append(direct, others...)
	}
	return direct, others
}

// nodeChatTargets is chatTargets for the sessions on other nodes.
func (s *Server) nodeChatTargets(to jid.JID) (direct, others []NodeSession) {
	all := s.nodeSessions(to.Bare().String(), true)
	if to.Resourcepart() != "" && (s.sessionAt(to) != nil || s.boundElsewhere(to)) {
		for _, n := range all {
			if n.JID == to.String() {
				direct = append(direct, n)
			} else {
				others = append(others, n)
			}
		}
		return direct, others
	}
	return all, nil
}

// boundElsewhere reports whether the full JID to is bound on another node.
func (s *Server) boundElsewhere(to jid.JID) bool { return s.boundAt(to) != nil }

// targets finds who gets a 1:1 message to `to`: direct gets the message
// itself, others (the recipient's other available clients) a carbon. A
// full JID of a bound session goes to that session; any other address
// goes to every available session of the account (RFC 6121 §8.5.3.2.1:
// an unknown resource is treated as the bare JID).
func (s *Server) targets(to jid.JID) (direct, others []*conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.sessions[to.Bare().String()]
	if t, ok := res[to.Resourcepart()]; ok && to.Resourcepart() != "" {
		direct = []*conn{t}
		for _, o := range res {
			if o != t && o.available != "" {
				others = append(others, o)
			}
		}
		return direct, others
	}
	for _, o := range res {
		if o.available != "" {
			direct = append(direct, o)
		}
	}
	return direct, nil
}

// availableOf returns the sessions of account that sent available presence.
func (s *Server) availableOf(account string) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for _, o := range s.sessions[account] {
		if o.available != "" {
			out = append(out, o)
		}
	}
	return out
}

// offlineBatch is how many waiting messages one flush step reads;
// offlineWait how long one of them waits for the client to make room.
const (
	offlineBatch = 256
	offlineWait  = 10 * time.Second
)

// flushOffline hands the messages that waited for the account to c, its
// session that just became available, with a delay stamp (XEP-0203), and
// records how far they went.
func (s *Server) flushOffline(ctx context.Context, c *conn) {
	if s.cfg.Archive == nil {
		return
	}
	acct := c.jid.Bare().String()
	lock := s.delivery.of(acct)
	lock.Lock()
	defer lock.Unlock()
	for {
		waiting, err := s.cfg.Archive.Offline(ctx, acct, offlineBatch)
		if err != nil {
			c.log.Error("reading offline messages", "err", err)
			return
		}
		if len(waiting) == 0 {
			return
		}
		// Each message waits for the client to make room: a backlog larger
		// than the queues would otherwise get the session dropped as one
		// that does not read, with the messages already marked delivered.
		// The wait is bounded, since senders to the account wait for the
		// lock meanwhile; what is left waits for the next session (and is
		// in the archive).
		sent := 0
		for _, m := range waiting {
			if from, ok := fromOf(m.Stanza); ok && s.blocks(ctx, acct, from) {
				// Archived before the block, not handed over after it
				// (XEP-0191 §3.3); it counts as delivered.
				sent++
				continue
			}
			st := withStanzaID(stanza.InsertChild(m.Stanza, "<delay xmlns='"+nsDelay+"' from='"+stanza.Escape(c.domain)+"' stamp='"+stanza.Stamp(m.At)+"'/>"), acct, m.ID)
			wctx, cancel := context.WithTimeout(ctx, offlineWait)
			ok := c.waitForRoom(wctx, len(st))
			cancel()
			if !ok {
				break
			}
			c.deliver(st, true)
			sent++
		}
		if sent > 0 {
			if err := s.cfg.Archive.Delivered(ctx, acct, waiting[sent-1].ID); err != nil {
				c.log.Error("recording offline delivery", "err", err)
				return
			}
		}
		if sent < len(waiting) {
			return // the session ended: the rest wait for the next one
		}
		if len(waiting) < offlineBatch {
			return
		}
	}
}
