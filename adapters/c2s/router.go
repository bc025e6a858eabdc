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
//     remote-server-not-found, since there is no s2s yet (an error is
//     never answered with an error; a subscription request still updates
//     the sender's roster, as the presence handler does);
//   - everything else is for this server, its accounts and their
//     resources: iq (the mux, then the resource), message (1:1 chat and
//     routing) and presence (rosters and directed presence).
//
// A to that is no JID is left to the kind's handler, which answers it.
func (c *conn) routeStanza(ctx context.Context, e *element) error {
	if to := e.Attr("to"); to != "" {
		if j, err := jid.Parse(to); err == nil {
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
			if !c.srv.isLocal(j) && !isSubscription(e) {
				return c.remote(e)
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

// remote answers a stanza to another server: none is reachable yet.
func (c *conn) remote(e *element) error {
	typ := e.Attr("type")
	if typ == "error" || e.XMLName.Local == "iq" && typ == "result" {
		return nil // errors and answers are never answered (RFC 6120 §8.3.1)
	}
	return c.write(c.errorReplyText(e, "cancel", "remote-server-not-found", "this server does not reach other servers yet"))
}

func isSubscription(e *element) bool {
	return e.XMLName.Local == "presence" && slices.Contains([]string{"subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"}, e.Attr("type"))
}

// isLocal reports whether j is at one of the domains this server serves.
func (s *Server) isLocal(j jid.JID) bool { return slices.Contains(s.cfg.Domains, j.Domainpart()) }
