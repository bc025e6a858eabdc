package c2s

import (
	"context"
	"fmt"
	"strings"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/adapters/stanza"
	"mellium.im/xmpp/jid"
)

// Resource binding (RFC 6120 §7): a session takes its full JID, within
// the account's resource quota, replacing an older one on the same JID.

// bind binds the requested resource, or a generated one (RFC 6120 §7); an
// older session on the same full JID is replaced (§7.7.2.2). bound is
// false when the request was refused with a stanza error and the client
// may try again.
func (c *conn) bind(iq, b *element) (bound bool, err error) {
	resource := ""
	if r, ok := b.Child(); ok && r.XMLName.Local == "resource" {
		resource = strings.TrimSpace(r.Text())
	}
	if resource == "" || resource == roomsResource {
		// The server's own resource for rooms elsewhere is not a
		// client's to take (RFC 6120 §7.7.2.1: the server may pick).
		resource = "annals-" + stanza.NewID()[:8]
	}
	j, err := jid.New(c.user, c.domain, resource)
	if err != nil {
		return false, c.write(c.errorReply(iq, "modify", "bad-request"))
	}
	c.jid = j
	c.sid = c.id
	c.wmu.Lock()
	if c.out == nil { // a refused bind before this one started it
		c.startQueueLocked()
	}
	c.wmu.Unlock()
	switch c.srv.bindSession(c) {
	case bindEnded:
		return false, &streamError{cond: "not-authorized", text: "the account's sessions were ended while this one logged in"}
	case bindTooMany:
		c.jid, c.sid = jid.JID{}, ""
		c.log.Info("bind refused: the account has too many resources", "account", j.Bare().String(), "max_resources", c.srv.cfg.MaxResources)
		// RFC 6120 §7.6.2.1: the account has reached its limit of
		// simultaneous connected resources.
		return false, c.write(c.errorReplyText(iq, "wait", "resource-constraint",
			fmt.Sprintf("this account has %d resources bound, the most it may have", c.srv.cfg.MaxResources)))
	}
	c.login.done()
	return true, c.write(fmt.Sprintf(`<iq type='result' id='%s'><bind xmlns='%s'><jid>%s</jid></bind></iq>`,
		stanza.Escape(iq.Attr("id")), nsBind, stanza.Escape(j.String())))
}

// Outcomes of bindSession.
const (
	bindOK      = iota
	bindEnded   // the account's sessions were ended after c began to authenticate
	bindTooMany // the account has Config.MaxResources sessions bound already
)

// bindSession makes c the session of its full JID. Detached sessions that
// wait to be resumed count against MaxResources as bound ones do: each
// holds its queue of unacknowledged stanzas.
func (s *Server) bindSession(c *conn) int {
	s.mu.Lock()
	bare, res := c.jid.Bare().String(), c.jid.Resourcepart()
	if s.endedSinceLocked(bare, c.authAt) {
		s.mu.Unlock()
		return bindEnded
	}
	if _, replacing := s.sessions[bare][res]; !replacing && s.cfg.MaxResources > 0 && len(s.sessions[bare]) >= s.cfg.MaxResources {
		s.mu.Unlock()
		return bindTooMany
	}
	if s.sessions[bare] == nil {
		s.sessions[bare] = make(map[string]*conn)
	}
	old := s.sessions[bare][res]
	s.sessions[bare][res] = c
	s.mu.Unlock()
	if s.cfg.Cluster != nil {
		if n := s.boundAt(c.jid); n != nil {
			s.cfg.Cluster.Replace(n.Node, c.jid.String())
		}
		s.cfg.Cluster.Announce(c.jid.String(), true, "")
	}
	if old != nil {
		old.log.Info("session replaced by a new one on the same resource", "jid", c.jid.String())
		old.shutdown((&streamError{cond: "conflict", text: "replaced by a new session"}).xml() + "</stream:stream>")
	}
	return bindOK
}

func (s *Server) unbind(c *conn) {
	if c.jid.Equal(jid.JID{}) {
		return
	}
	s.mu.Lock()
	bare, res := c.jid.Bare().String(), c.jid.Resourcepart()
	last := false
	if s.sessions[bare][res] == c {
		delete(s.sessions[bare], res)
		if len(s.sessions[bare]) == 0 {
			delete(s.sessions, bare)
			last = true
		}
	}
	status := c.lastStatus
	s.mu.Unlock()
	if s.cfg.Cluster != nil && s.sessionAt(c.jid) == nil {
		s.cfg.Cluster.Announce(c.jid.String(), false, "")
	}
	if last {
		s.wentOffline(bare, status)
	}
}

// LastSeen is what records an account's last session ending (app/accounts).
type LastSeen interface {
	WentOffline(ctx context.Context, bare, status string) error
}

// wentOffline records that the account's last session here ended
// (XEP-0012 last activity): not on the session's way out, which a store
// write would slow. Serve waits for it: the sessions a stopping server
// ends are recorded before serve catches its read models up and closes
// the log, not after (their events were missing from the read models,
// or from the log).
func (s *Server) wentOffline(bare, status string) {
	ls, ok := s.cfg.Accounts.(LastSeen)
	if !ok {
		return
	}
	s.lastSeen.Add(1)
	go func() {
		defer s.lastSeen.Done()
		ctx, cancel := context.WithTimeout(context.Background(), mux.TeardownTimeout)
		defer cancel()
		if err := ls.WentOffline(ctx, bare, status); err != nil {
			s.cfg.Log.Debug("last activity not recorded", "account", bare, "err", err)
		}
	}()
}
