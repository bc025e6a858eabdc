package c2s

// IQs the server sends to another server on an account's behalf, from
// the account's bare JID (a push notification to an app server, XEP-0357
// §7), and the answers it waits for. An answer is taken only from the
// JID the IQ went to, to the account it came from, with the IQ's id: 16
// random hex digits, so that no other server can answer in its place.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"

	"annals.im/annals/adapters/stanza"
)

// MaxAwaitedIQs bounds the IQs of accounts awaiting an answer: past it, a
// new one fails at once (ErrTooManyIQs) rather than holding more.
const MaxAwaitedIQs = 4096

// Errors of AccountIQ.
var (
	ErrTooManyIQs   = errors.New("c2s: too many IQs await an answer")
	ErrNotRemote    = errors.New("c2s: an account's IQ goes to another server only")
	errNoFederation = errors.New("c2s: this server does not reach other servers")
)

type awaitedIQs struct {
	mu sync.Mutex
	m  map[string]awaitedIQ // by id
}

type awaitedIQ struct {
	from, to string // the account's bare JID, the JID asked
	answer   chan *stanza.Element
}

// AccountIQ sends an IQ of type typ carrying payload from the account's
// bare JID to a JID at another server, and returns the answer (a result
// or an error IQ, as that server sent it, or as this one wrote it when
// the stanza could not be delivered), or ctx's error.
func (s *Server) AccountIQ(ctx context.Context, from, to jid.JID, typ, payload string) (*stanza.Element, error) {
	if s.cfg.Remote == nil {
		return nil, errNoFederation
	}
	from = from.Bare()
	if !s.isLocal(from) || s.isLocal(to) {
		return nil, fmt.Errorf("%w: %s to %s", ErrNotRemote, from, to)
	}
	if _, ok := s.cfg.Mux.Service(to.Domainpart()); ok {
		return nil, fmt.Errorf("%w: %s is a service here", ErrNotRemote, to)
	}
	id := stanza.NewID() + stanza.NewID()
	w := awaitedIQ{from: from.String(), to: to.String(), answer: make(chan *stanza.Element, 1)}
	s.awaited.mu.Lock()
	if len(s.awaited.m) >= MaxAwaitedIQs {
		s.awaited.mu.Unlock()
		return nil, ErrTooManyIQs
	}
	if s.awaited.m == nil {
		s.awaited.m = make(map[string]awaitedIQ)
	}
	s.awaited.m[id] = w
	s.awaited.mu.Unlock()
	defer func() {
		s.awaited.mu.Lock()
		delete(s.awaited.m, id)
		s.awaited.mu.Unlock()
	}()
	s.cfg.Remote.Send(from, to, fmt.Sprintf(`<iq xmlns='%s' type='%s' id='%s'%s>%s</iq>`,
		nsClient, stanza.Escape(typ), id, stanza.ToFrom(to.String(), from.String()), payload))
	select {
	case a := <-w.answer:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answered hands e, an IQ result or error from sender to the account's
// bare JID here, to the AccountIQ awaiting it, and reports whether one
// was.
func (s *Server) answered(here jid.JID, sender string, e *stanza.Element) bool {
	s.awaited.mu.Lock()
	w, ok := s.awaited.m[e.Attr("id")]
	if ok && (w.from != here.String() || w.to != sender) {
		ok = false // someone else answering: not taken
	}
	if ok {
		delete(s.awaited.m, e.Attr("id"))
	}
	s.awaited.mu.Unlock()
	if ok {
		w.answer <- e // buffered, and taken out of the map: sent once
	}
	return ok
}
