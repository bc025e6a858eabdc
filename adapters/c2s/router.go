package c2s

// The router: where a bound session's stanza goes, decided once by its
// destination (RFC 6120 §10, RFC 6121 §8), before any feature sees it.

import (
	"context"
	"errors"
	"slices"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// routeStanza hands e (an iq, message or presence) to what serves its
// destination:
//
//   - a service mounted on the to's domain (the rooms) takes any stanza;
//   - a domain this server neither serves nor mounts is another server's:
//     the stanza goes there (federation.go), but for 1:1 chat, archived
//     first (chat.go), and subscriptions, which update the sender's
//     roster first (presence.go);
//   - everything else is for this server, its accounts and their
//     resources: iq (the mux, then the resource), message (1:1 chat and
//     routing) and presence (rosters and directed presence).
//
// A stanza to a JID the account blocks goes nowhere (XEP-0191 §3.3,
// blocking.go). A to that is no JID is left to the kind's handler, which
// answers it.
func (c *conn) routeStanza(ctx context.Context, e *element) error {
	if to := e.Attr("to"); to != "" {
		if j, err := jid.Parse(to); err == nil {
			if c.srv.blocks(ctx, c.jid.Bare().String(), j) {
				return c.refuseBlocked(e)
			}
			if svc, ok := c.srv.cfg.Mux.Service(j.Domainpart()); ok {
				err := svc.Handle(ctx, c, e, j)
				var se *stanza.StreamError
				switch {
				case errors.As(err, &se):
					return &streamError{cond: se.Cond, text: se.Text}
				case err != nil:
					c.log.Error("service failed", "service", j.Domainpart(), "err", err)
				}
				return nil
			}
			if !c.srv.isLocal(j) {
				// A room elsewhere the account is in, or joins, is the
				// account's (remoterooms.go).
				switch e.XMLName.Local {
				case "presence":
					if c.remoteRoomPresence(e, j) {
						return nil
					}
				case "message":
					if c.remoteRoomMessage(ctx, e, j) {
						return nil
					}
				}
			}
			if !c.srv.isLocal(j) && !isSubscription(e) && (!isChat(e, j) || c.srv.cfg.Remote == nil) {
				return c.remote(e, j)
			}
		}
	}
	switch e.XMLName.Local {
	case "iq":
		return c.iq(ctx, e)
	case "message":
		return c.message(ctx, e)
	default:
		return c.presence(ctx, e)
	}
}

// isChat reports whether e is a 1:1 message to a user, which is archived
// wherever the user is (chat.go).
func isChat(e *element, to jid.JID) bool {
	typ := e.Attr("type")
	return e.XMLName.Local == "message" && (typ == "" || typ == "chat" || typ == "normal") && to.Localpart() != ""
}

func isSubscription(e *element) bool {
	return e.XMLName.Local == "presence" && slices.Contains([]string{"subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"}, e.Attr("type"))
}

// isLocal reports whether j is at one of the domains this server serves.
func (s *Server) isLocal(j jid.JID) bool { return slices.Contains(s.cfg.Domains, j.Domainpart()) }
