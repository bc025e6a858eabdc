package c2s

// What the core offers the services mounted on the mux (the room service's
// muc.Host), and how it tells them of sessions, the log and shutdown.

import (
	"context"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/domain/event"
)

// Sessions returns the sessions a stanza to j reaches: the full JID's, or
// every one of the bare JID's.
func (s *Server) Sessions(j jid.JID) []mux.Session {
	conns := s.route(j)
	out := make([]mux.Session, len(conns))
	for i, c := range conns {
		out[i] = c
	}
	return out
}

// Available returns the sessions of acct (a bare JID) that sent available
// presence.
func (s *Server) Available(acct string) []mux.Session {
	conns := s.availableOf(acct)
	out := make([]mux.Session, len(conns))
	for i, c := range conns {
		out[i] = c
	}
	return out
}

// services calls f with each service mounted on the mux.
func (s *Server) services(f func(mux.Service)) {
	for _, svc := range s.cfg.Mux.Services() {
		f(svc)
	}
}

// sessionGone tells the services that c ended or became unavailable.
func (s *Server) sessionGone(c *conn) {
	s.services(func(svc mux.Service) {
		if g, ok := svc.(mux.SessionWatcher); ok {
			g.SessionGone(c)
		}
	})
}

// Publish hands the committed events of batch to the services that
// deliver from the log (the room service: muc.Service.Publish). It is
// called by one goroutine, with the log's batches in order (the store's
// subscription from the position the server started at), whichever
// process appended them.
func (s *Server) Publish(ctx context.Context, batch []event.Envelope) {
	s.services(func(svc mux.Service) {
		if p, ok := svc.(mux.LogFollower); ok {
			p.Publish(ctx, batch)
		}
	})
}
