package c2s

// Several nodes serving one set of domains from one log (Config.Cluster):
// what reaches the sessions of the other nodes, and what they hand here.
//
// Archived 1:1 messages reach every node from the log: the node that
// appended one delivers it to its own sessions at once (chat.go), and
// every other node delivers it to its own when its log follower hands it
// over (publishChat). Everything else a session here sends to sessions
// there (presence, IQs, messages that are not archived) goes over the
// cluster's bus, to each of those sessions by its full JID.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
)

// Cluster is the other nodes (adapters/cluster.Bus, adapted by cmd/annals).
type Cluster interface {
	// Announce tells the other nodes about a session here: bound (false:
	// it ended) and its available presence ("" when none).
	Announce(full string, bound bool, presence string)
	// Sessions returns the account's sessions on the other nodes.
	Sessions(bare string) []NodeSession
	// Send hands wire to node, for its session with the full JID to.
	Send(node, to, wire string)
	// Replace asks node to end its session bound to full, which a client
	// bound here.
	Replace(node, full string)
}

// NodeSession is a session on another node.
type NodeSession struct {
	JID, Node string
	Presence  string // its available presence as broadcast; "" when none
}

// nodeSessions returns the sessions of bare on other nodes; available
// keeps those that sent available presence only.
func (s *Server) nodeSessions(bare string, available bool) []NodeSession {
	if s.cfg.Cluster == nil {
		return nil
	}
	all := s.cfg.Cluster.Sessions(bare)
	if !available {
		return all
	}
	out := all[:0]
	for _, n := range all {
		if n.Presence != "" {
			out = append(out, n)
		}
	}
	return out
}

// nodeRoute returns the sessions elsewhere a stanza to `to` reaches, as
// route does here: a full JID's session, else every available one.
func (s *Server) nodeRoute(to jid.JID) []NodeSession {
	if s.cfg.Cluster == nil || !s.isLocal(to) {
		return nil
	}
	if to.Resourcepart() != "" {
		if n := s.boundAt(to); n != nil {
			return []NodeSession{*n}
		}
		if s.sessionAt(to) != nil {
			return nil // the addressed session is here
		}
	}
	return s.nodeSessions(to.Bare().String(), true)
}

// boundAt returns the session of another node bound to the full JID j,
// or nil.
func (s *Server) boundAt(j jid.JID) *NodeSession {
	for _, n := range s.nodeSessions(j.Bare().String(), false) {
		if n.JID == j.String() {
			return &n
		}
	}
	return nil
}

// toNode sends wire to session n on its node, addressed to it.
func (s *Server) toNode(n NodeSession, wire string) {
	s.cfg.Cluster.Send(n.Node, n.JID, stanza.WithTo(wire, n.JID))
}

// announce tells the other nodes of c's presence ("" when unavailable).
func (s *Server) announce(c *conn, presence string) {
	if s.cfg.Cluster != nil {
		s.cfg.Cluster.Announce(c.jid.String(), true, presence)
	}
}

// FromNode delivers a stanza another node sends to a session here: to a
// full JID, that session; to a bare one, every available session.
func (s *Server) FromNode(to, wire string) {
	j, err := jid.Parse(to)
	if err != nil || !s.isLocal(j) {
		s.cfg.Log.Warn("cluster: a stanza from another node for no session here", "to", clip(to, 256))
		return
	}
	urgent := strings.HasPrefix(wire, "<message")
	if j.Resourcepart() != "" {
		if c := s.sessionAt(j); c != nil {
			c.deliver(wire, urgent)
		}
		return
	}
	for _, c := range s.availableOf(j.String()) {
		c.deliver(stanza.WithTo(wire, c.jid.String()), urgent)
	}
}

// NodeReplaced ends the session here bound to full: a client bound the
// same full JID on another node, and the newer session wins (RFC 6120
// §7.7.2.2), as it does on one node.
func (s *Server) NodeReplaced(full string) {
	j, err := jid.Parse(full)
	if err != nil {
		return
	}
	if c := s.sessionAt(j); c != nil {
		c.log.Info("session replaced by a new one on the same resource, on another node", "jid", full)
		c.shutdown((&streamError{cond: "conflict", text: "replaced by a new session"}).xml() + "</stream:stream>")
	}
}

// NodeSessionGone tells the sessions here that a session of another node,
// available with presence, is gone without a word (its node stopped
// answering): its account's sessions here and its contacts' see it go
// unavailable, as they would if it had ended (RFC 6121 §4.5.4). Contacts
// at other servers are told too: the node that held their streams is gone.
func (s *Server) NodeSessionGone(full, presence string) {
	j, err := jid.Parse(full)
	if err != nil || s.cfg.Accounts == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.fanOut(ctx, j, nil, fmt.Sprintf(`<presence type='unavailable' from='%s'/>`, stanza.Escape(full)), false)
}

// delivered remembers the archived messages this node appended and
// delivered itself, until its log follower meets them (publishChat), so
// that they are not delivered twice. Appends hold a shared lock of the
// recipient's bucket from before they append until they are remembered;
// the follower takes it alone to look, so it cannot meet an event before
// the node that appended it had the time to remember it.
type delivered struct {
	locks [64]sync.RWMutex
	mu    sync.Mutex
	ids   map[string]time.Time // SenderID|RecipientID -> when
}

// deliveredTTL bounds how long an entry waits for the follower: one that
// old is dropped (the follower is minutes behind, or never comes: the
// event was refused after all). deliveredMax bounds the entries.
const (
	deliveredTTL = 5 * time.Minute
	deliveredMax = 1 << 18
)

func chatKey(m archive.MessageSent) string { return m.SenderID + "|" + m.RecipientID }

func (d *delivered) lock(bare string) *sync.RWMutex {
	return &d.locks[bucketOf(bare)%uint32(len(d.locks))]
}

func (d *delivered) remember(m archive.MessageSent) {
	if m.SenderID == "" && m.RecipientID == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = make(map[string]time.Time)
	}
	now := time.Now()
	if len(d.ids) >= deliveredMax {
		for k, at := range d.ids {
			if now.Sub(at) > deliveredTTL {
				delete(d.ids, k)
			}
		}
		if len(d.ids) >= deliveredMax {
			clear(d.ids) // a follower that far behind: duplicates beat growth
		}
	}
	d.ids[chatKey(m)] = now
}

// take reports whether m was appended here, forgetting it.
func (d *delivered) take(m archive.MessageSent) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := chatKey(m)
	_, ok := d.ids[k]
	delete(d.ids, k)
	return ok
}

// publishChat delivers to the sessions here an archived 1:1 message that
// another node appended: to the recipient's (the addressed one, carbons
// to the others) and carbons to the sender's; a message that waits
// offline waits for the recipient's next session instead.
func (s *Server) publishChat(e event.Envelope) {
	if s.cfg.Cluster == nil || e.Type != archive.TypeMessageSent {
		return
	}
	var m archive.MessageSent
	if err := e.Decode(archive.Schema, &m); err != nil {
		s.cfg.Log.Error("cluster: an archived message the log follower cannot read", "event", e.ID.String(), "err", err)
		return
	}
	from, err1 := jid.Parse(m.From)
	to, err2 := jid.Parse(m.To)
	if err1 != nil || err2 != nil {
		return
	}
	sender, recipient := from.Bare().String(), to.Bare().String()
	l := s.appended.lock(recipient)
	l.Lock()
	mine := s.appended.take(m)
	l.Unlock()
	if mine || m.Offline || m.Erased {
		return
	}
	if sender == recipient {
		note := withStanzaID(m.Stanza, sender, m.SenderID)
		for _, t := range s.availableOf(sender) {
			if t.jid.String() != m.From {
				t.deliver(note, true)
			}
		}
		return
	}
	if s.isLocal(to) {
		direct, others := s.targets(to)
		chatRoute{rec: m, direct: direct, others: others}.deliver(m.Stanza, recipient, m.Kind, true)
	}
	if s.isLocal(from) {
		out := withStanzaID(m.Stanza, sender, m.SenderID)
		for _, t := range s.availableOf(sender) {
			t.deliver(stanza.Carbon("sent", sender, t.jid.String(), m.Kind, out), true)
		}
	}
}
