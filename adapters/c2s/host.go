package c2s

// What the core offers the services mounted on the mux (the room service's
// muc.Host), and how it tells them of sessions, the log and shutdown.

import (
	"context"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/mux"
	"annals.im/annals/domain/account"
	"annals.im/annals/domain/archive"
	"annals.im/annals/domain/event"
)

// Sessions returns the sessions a stanza to j reaches: the full JID's, or
// every one of the bare JID's; for a JID at another server, one that
// sends there (from the domain each stanza says).
func (s *Server) Sessions(j jid.JID) []mux.Session {
	if _, mounted := s.cfg.Mux.Service(j.Domainpart()); !s.isLocal(j) && !mounted && s.cfg.Remote != nil {
		return []mux.Session{peer{srv: s, from: j.String()}}
	}
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
	if j, err := jid.Parse(acct); err == nil && !s.isLocal(j) {
		return s.remoteAvailable(acct) // a contact elsewhere (remotecaps.go)
	}
	conns := s.availableOf(acct)
	out := make([]mux.Session, len(conns))
	for i, c := range conns {
		out[i] = c
	}
	return out
}

// Online returns the available sessions of every account here, for
// what an administrator asks of them (XEP-0133: the online users, an
// announcement).
func (s *Server) Online() []mux.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mux.Session
	for _, res := range s.sessions {
		for _, c := range res {
			if c.available != "" {
				out = append(out, c)
			}
		}
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
	s.detachRemoteRooms(c)
	s.caps.forget(c)
	s.services(func(svc mux.Service) {
		if g, ok := svc.(mux.SessionWatcher); ok {
			g.SessionGone(c)
		}
	})
}

// Publish delivers what the committed events of batch did: roster and
// block list changes are pushed to the account's sessions here
// (rosters.go, blocking.go), and the batch goes to the services that
// deliver from the log (the room service: muc.Service.Publish). It is
// called by one goroutine, with the log's batches in order (the store's
// subscription from the position the server started at), whichever
// process appended them.
//
// Log order holds across both: the services get the runs of events
// between those changes, each before the next push. The block lists the
// router checks follow the log here too (blocklists.go).
func (s *Server) Publish(ctx context.Context, batch []event.Envelope) {
	run := 0 // start of the events not yet handed to the services
	for i, e := range batch {
		if e.Type == archive.TypeMessageSent {
			s.publishChat(e)
		}
		if s.lists != nil && (isBlockingEvent(e) || e.Type == account.TypeCreated) {
			s.lists.fold(e)
		}
		switch {
		case isRosterEvent(e):
			s.publishToServices(ctx, batch[run:i])
			s.pushRoster(ctx, e)
		case isBlockingEvent(e):
			s.publishToServices(ctx, batch[run:i])
			s.pushBlocklist(e)
		default:
			continue
		}
		run = i + 1
	}
	s.publishToServices(ctx, batch[run:])
}

func (s *Server) publishToServices(ctx context.Context, evs []event.Envelope) {
	if len(evs) == 0 {
		return
	}
	s.services(func(svc mux.Service) {
		if p, ok := svc.(mux.LogFollower); ok {
			p.Publish(ctx, evs)
		}
	})
}
